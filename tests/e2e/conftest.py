"""Fixtures for end-to-end tests: the real server driven by real clients.

A client that is not installed skips its tests, unless REGISTRY_E2E_REQUIRED=1
(set by .ci/run) turns that skip into a failure.
"""

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TIMEOUT = 120
GREETING = "hello from the registry's e2e image"
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY greeting.txt /greeting.txt
CMD ["/bin/busybox", "cat", "/greeting.txt"]
"""
# Nothing but the loopback server: no proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_configure(config):
    """Register the e2e marker."""
    config.addinivalue_line("markers", "e2e: the real server driven by real clients")


def pytest_collection_modifyitems(items):
    """Mark every test in this folder as e2e."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def missing(reason):
    """Skip for a missing client, or fail when REGISTRY_E2E_REQUIRED=1."""
    if os.environ.get("REGISTRY_E2E_REQUIRED") == "1":
        pytest.fail(f"{reason} (REGISTRY_E2E_REQUIRED=1)", pytrace=False)
    pytest.skip(reason)


def need(binary):
    """Return the path of a client binary, or skip (fail in CI) without it."""
    path = shutil.which(binary)
    if path is None:
        missing(f"{binary} is not installed")
    return path


def run(cmd, timeout=TIMEOUT, **kwargs):
    """Run a command and return its stdout; fail the test showing its stderr."""
    try:
        done = subprocess.run(
            cmd, check=True, capture_output=True, text=True, timeout=timeout, **kwargs
        )
    except subprocess.CalledProcessError as error:
        message = f"{shlex.join(cmd)} exited {error.returncode}:\n{error.stderr}"
        pytest.fail(message, pytrace=False)
    return done.stdout


def wait_for(name, ready, proc, log, seconds=60):
    """Poll ready() until it is true; fail if proc exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited:\n{log.read_text()}", pytrace=False)
        if ready():
            return
        time.sleep(0.1)
    message = f"{name} not ready in {seconds}s:\n{log.read_text()}"
    pytest.fail(message, pytrace=False)


def stop(proc):
    """Stop a process we started, by its PID, and wait until it has exited."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def spawn(cmd, log, **kwargs):
    """Start cmd in the background with its output going to the file log."""
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running registry: where it listens and where it keeps its data."""

    port: int
    storage_root: Path
    env: dict
    # Keyword only: subclasses add positional fields of their own.
    log: Path | None = field(default=None, kw_only=True)

    @property
    def host(self):
        """HOST:PORT, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        """The base URL of the server."""
        return f"http://{self.host}"

    def flask(self, *args):
        """Run `flask --app wsgi ARGS` on the server's storage; return stdout."""
        cmd = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
        return run(cmd, cwd=REPO_ROOT, env=self.env)

    def open(self, path, headers=None):
        """GET path from the server, never through a proxy; caller closes it."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        return DIRECT.open(request, timeout=30)

    def answers(self):
        """True once GET /v2/ answers 200 or 401."""
        try:
            with self.open("/v2/") as response:
                return response.status == 200
        except urllib.error.HTTPError as error:
            error.close()
            return error.code == 401
        except OSError:
            return False


@pytest.fixture(scope="session")
def registry_port():
    """The port the registry server will listen on (dockerd trusts it too)."""
    return free_port()


@pytest.fixture(scope="session")
def registry_server(registry_port, tmp_path_factory):
    """Start gunicorn on 127.0.0.1 with a temporary storage root."""
    tmp = tmp_path_factory.mktemp("registry")
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_ANONYMOUS_PUSH": "true",
    }
    server = Server(registry_port, tmp / "storage", env, log=tmp / "gunicorn.log")
    with serving(server, tmp, "--bind", server.host):
        yield server


@contextlib.contextmanager
def serving(server, tmp, *flags):
    """Run gunicorn with flags for server until the block ends; log under tmp."""
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *flags]
    proc = spawn(cmd, tmp / "gunicorn.log", cwd=REPO_ROOT, env=server.env)
    try:
        wait_for("gunicorn", server.answers, proc, tmp / "gunicorn.log")
        yield
    finally:
        stop(proc)


@dataclass
class Docker:
    """The docker CLI pointed at one daemon."""

    binary: str
    host: str
    env: dict

    def run(self, *args, timeout=TIMEOUT):
        """Run `docker ARGS` against this daemon and return its stdout."""
        return run([self.binary, "--host", self.host, *args], timeout, env=self.env)

    def answers(self):
        """True once the daemon answers `docker info`."""
        cmd = [self.binary, "--host", self.host, "info"]
        done = subprocess.run(cmd, capture_output=True, env=self.env, timeout=30)
        return done.returncode == 0


def dockerd_command(binary, tmp, registry_port):
    """The dockerd command line: no iptables, no bridge, all state under tmp."""
    (tmp / "daemon.json").write_text("{}\n")
    return [
        binary,
        "--config-file", f"{tmp}/daemon.json",
        "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
        "--bridge=none",
        "--data-root", f"{tmp}/data", "--exec-root", f"{tmp}/exec",
        "--pidfile", f"{tmp}/docker.pid", "--host", f"unix://{tmp}/docker.sock",
        "--insecure-registry", f"127.0.0.1:{registry_port}",
    ]  # fmt: skip


def remove_daemon_dir(tmp):
    """Unmount what dockerd left mounted under tmp, then delete tmp."""
    for point in reversed(mounts_under(tmp)):
        subprocess.run(["umount", point], check=False)
    if mounts_under(tmp):
        pytest.fail(f"still mounted, not removing {tmp}: {mounts_under(tmp)}")
    shutil.rmtree(tmp)


def mounts_under(folder):
    """The mount points inside folder, outermost first."""
    lines = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in lines]
    return sorted(p for p in points if p.startswith(f"{folder}/"))


@pytest.fixture(scope="session")
def dockerd(registry_port):
    """Start a private dockerd that trusts the registry; yield a Docker CLI."""
    docker, binary = need("docker"), need("dockerd")
    if os.geteuid() != 0:
        missing("dockerd needs root")
    # Unix socket paths are short (108 bytes): keep this folder near the root.
    tmp = Path(tempfile.mkdtemp(prefix="d", dir="/tmp"))
    env = {**os.environ, "DOCKER_CONFIG": f"{tmp}/cli", "DOCKER_BUILDKIT": "0"}
    client = Docker(docker, f"unix://{tmp}/docker.sock", env)
    proc = spawn(dockerd_command(binary, tmp, registry_port), tmp / "dockerd.log")
    try:
        wait_for("dockerd", client.answers, proc, tmp / "dockerd.log")
        yield client
    finally:
        stop(proc)
        remove_daemon_dir(tmp)


@dataclass
class Image:
    """An image in the daemon and the line it prints when run."""

    name: str
    line: str


def static_busybox():
    """Return the path of a statically linked busybox, or skip without one."""
    path = need("busybox")
    if subprocess.run(["ldd", path], capture_output=True).returncode == 0:
        missing(f"{path} is linked dynamically; install busybox-static")
    return path


@pytest.fixture
def busybox_image(dockerd, tmp_path):
    """Build a two-layer image FROM scratch whose command prints GREETING."""
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(static_busybox(), context / "busybox")
    (context / "greeting.txt").write_text(GREETING + "\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    dockerd.run("build", "--quiet", "--tag", "e2e-busybox:latest", str(context))
    return Image("e2e-busybox:latest", GREETING)


@pytest.fixture(scope="session")
def skopeo():
    """Return a function that runs skopeo with a timeout and returns stdout."""
    binary = need("skopeo")

    def run_skopeo(*args, timeout=TIMEOUT):
        # The tests copy only their own images: accept any signature policy.
        return run([binary, "--insecure-policy", *args], timeout)

    return run_skopeo
