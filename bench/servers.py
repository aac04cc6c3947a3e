"""The servers the benchmark compares, each started on a free loopback port.

- the registry under gunicorn with the shipped ``gunicorn.conf.py``;
- Debian's ``docker-registry`` (distribution) with a filesystem config;
- nginx serving the registry's own blob files;
- a private dockerd that trusts both registries, for ``docker push``/``pull``.

Every process started here is stopped by its PID when its context ends.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60
STOP_SECONDS = 30
MEMORY_POLL_SECONDS = 0.02
# Nothing but the loopback servers: no proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {host}
"""

NGINX_CONFIG = """\
daemon off;
{user}
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    # One sendfile(2) call per response, as gunicorn makes, not 2 MiB steps.
    sendfile_max_chunk 0;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen {host};
        root {root};
        location /blobs/ {{ }}
    }}
}}
"""


class Missing(Exception):
    """A part of the benchmark cannot run on this machine; the message says why."""


@dataclass
class Server:
    """A running server: its address, its main process, where its data lives."""

    name: str
    host: str
    process: subprocess.Popen
    data: Path
    log: Path
    url: str = field(init=False)

    def __post_init__(self):
        self.url = "http://" + self.host

    def worker_pids(self):
        """The processes that serve requests: the children, else the process."""
        return child_pids(self.process.pid) or [self.process.pid]


def loopback_address():
    """Return ``127.0.0.1:PORT`` with a port that nothing listens on right now."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return f"127.0.0.1:{listener.getsockname()[1]}"


def find_binary(name, package, install):
    """Return the path of ``name``; apt-get install ``package`` if allowed."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None and install and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env)
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise Missing(f"{name} is not installed (as root: apt-get install {package})")
    return path


def spawn(cmd, log, **kwargs):
    """Start cmd in the background, its output going to the file log."""
    with open(log, "wb") as output:
        return subprocess.Popen(cmd, stdout=output, stderr=output, **kwargs)


def wait_until(name, ready, process, log, seconds=START_SECONDS):
    """Poll ready() until true; raise if the process exits or time runs out."""
    started = time.monotonic()
    while process.poll() is None:
        if ready():
            return
        if time.monotonic() - started > seconds:
            break
        time.sleep(0.1)
    state = "exited" if process.poll() is not None else f"not ready in {seconds}s"
    raise RuntimeError(f"{name} {state}:\n{Path(log).read_text()}")


def stop(process):
    """Stop a process started here, by its PID: TERM, then KILL if it lingers."""
    for send in (process.terminate, process.kill):
        if process.poll() is not None:
            return
        send()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            continue


def answers(url):
    """True once url answers any HTTP status."""
    try:
        with DIRECT.open(url, timeout=5):
            return True
    except urllib.error.HTTPError as error:
        error.close()
        return True
    except OSError:
        return False


@contextmanager
def supervised(name, process, log, ready):
    """Wait until ready() holds; stop the process when the context ends."""
    try:
        wait_until(name, ready, process, log)
        yield
    finally:
        stop(process)


@contextmanager
def running(server, ready_path):
    """Yield a started server once it answers ready_path; stop it afterwards."""
    ready = lambda: answers(server.url + ready_path)  # noqa: E731
    with supervised(server.name, server.process, server.log, ready):
        yield server


def start_registry(tmp):
    """Start this registry under gunicorn with the shipped settings."""
    host = loopback_address()
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "registry"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_ANONYMOUS_PUSH": "true",
        "REGISTRY_TOKEN_EXPIRY": "86400",
        "PYTHONPATH": str(REPO_ROOT),
    }
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    cmd += ["--bind", host]
    log = tmp / "gunicorn.log"
    process = spawn(cmd, log, cwd=REPO_ROOT, env=env)
    return running(Server("registry", host, process, tmp / "registry", log), "/v2/")


def start_distribution(tmp, install):
    """Start Debian's docker-registry with a filesystem config of its own."""
    binary = find_binary("docker-registry", "docker-registry", install)
    host = loopback_address()
    config = tmp / "distribution.yml"
    root = tmp / "distribution"
    config.write_text(DISTRIBUTION_CONFIG.format(root=root, host=host))
    log = tmp / "distribution.log"
    process = spawn([binary, "serve", str(config)], log)
    return running(Server("distribution", host, process, root, log), "/v2/")


def start_nginx(tmp, root, install):
    """Start nginx serving ``root`` (the registry's storage) as the current user."""
    binary = find_binary("nginx", "nginx", install)
    host = loopback_address()
    folder = tmp / "nginx"
    folder.mkdir()
    user = ""
    if os.geteuid() == 0:
        # Run the workers as the user that owns the files, not nginx's default.
        account = pwd.getpwuid(os.geteuid())
        user = f"user {account.pw_name} {grp.getgrgid(account.pw_gid).gr_name};"
    config = folder / "nginx.conf"
    text = NGINX_CONFIG.format(user=user, tmp=folder, host=host, root=root)
    config.write_text(text)
    log = folder / "nginx.log"
    cmd = [
        binary,
        "-c",
        str(config),
        "-p",
        str(folder),
        "-e",
        str(folder / "error.log"),
    ]
    process = spawn(cmd, log)
    return running(Server("nginx", host, process, root, log), "/")


@dataclass
class Docker:
    """The docker CLI pointed at a private daemon."""

    binary: str
    host: str
    env: dict

    def run(self, *args, timeout=600):
        """Run ``docker ARGS``; return stdout, raise with stderr on failure."""
        cmd = [self.binary, "--host", self.host, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                              timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n"
                               f"{done.stderr}")  # fmt: skip
        return done.stdout

    def answers(self):
        try:
            self.run("info", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True


@contextmanager
def start_dockerd(hosts, install):
    """Start a private dockerd trusting ``hosts`` over plain HTTP; yield its CLI."""
    client = find_binary("docker", "docker.io", install)
    binary = find_binary("dockerd", "docker.io", install)
    if os.geteuid() != 0:
        raise Missing("dockerd needs root")
    # Unix socket paths are short (108 bytes): keep this folder near the root.
    tmp = Path(tempfile.mkdtemp(prefix="b", dir="/tmp"))
    (tmp / "daemon.json").write_text("{}\n")
    cmd = [
        binary, "--config-file", f"{tmp}/daemon.json",
        "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
        "--bridge=none", "--data-root", f"{tmp}/data", "--exec-root", f"{tmp}/exec",
        "--pidfile", f"{tmp}/docker.pid", "--host", f"unix://{tmp}/docker.sock",
    ]  # fmt: skip
    for host in hosts:
        cmd += ["--insecure-registry", host]
    env = {**os.environ, "DOCKER_CONFIG": f"{tmp}/cli", "DOCKER_BUILDKIT": "0"}
    docker = Docker(client, f"unix://{tmp}/docker.sock", env)
    log = tmp / "dockerd.log"
    try:
        with supervised("dockerd", spawn(cmd, log), log, docker.answers):
            yield docker
    finally:
        remove_daemon_folder(tmp)


def remove_daemon_folder(folder):
    """Unmount what dockerd left mounted under folder, then delete it."""
    mounted = mount_points(folder)
    while mounted:
        subprocess.run(["umount", mounted[-1]], check=False)
        if mount_points(folder) == mounted:
            return  # still mounted: leave the folder rather than delete into it
        mounted = mount_points(folder)
    shutil.rmtree(folder, ignore_errors=True)


def mount_points(folder):
    """The mount points below folder, from /proc/self/mountinfo, sorted."""
    prefix = f"{folder}/"
    with open("/proc/self/mountinfo") as table:
        points = {fields[4] for fields in map(str.split, table)}
    return sorted(point for point in points if point.startswith(prefix))


def child_pids(pid):
    """The PIDs of a process's children, from /proc."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return children


def cpu_seconds(server):
    """CPU time, user and system, that a server's processes have used so far."""
    ticks = 0
    for pid in {server.process.pid, *server.worker_pids()}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def resident_kib(pid):
    """VmRSS of a process in KiB, or 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryWatch:
    """Polls VmRSS of a server's workers in a thread; keeps each one's peak."""

    def __init__(self, server):
        self.server = server
        self.peaks = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def poll(self):
        while not self.done.is_set():
            for pid in self.server.worker_pids():
                self.peaks[pid] = max(self.peaks.get(pid, 0), resident_kib(pid))
            self.done.wait(MEMORY_POLL_SECONDS)

    @property
    def peak_mib(self):
        """The largest resident size any one worker reached, in MiB."""
        return max(self.peaks.values(), default=0) / 1024
