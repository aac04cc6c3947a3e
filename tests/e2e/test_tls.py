"""The registry over TLS by host name, with the certificate `registry cert` made.

dockerd counts every registry whose name resolves into 127.0.0.0/8 as
insecure: it tries HTTPS without checking the certificate, then falls back to
plain HTTP. The server here speaks TLS only, so a docker pull that works went
over TLS; skopeo and Python's ssl module, which make no such exception, show
that the certificate verifies against the CA by name, and fails without it.
"""

import http.client
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Server,
    free_port,
    need,
    serving,
)

HOSTNAME = "localhost"
DOCKER_CERTS = Path("/etc/docker/certs.d")


@dataclass
class TLSServer(Server):
    """A registry served over HTTPS, reached by HOSTNAME."""

    ca_file: Path = None

    @property
    def host(self):
        return f"{HOSTNAME}:{self.port}"

    @property
    def url(self):
        return f"https://{self.host}"

    def trusting_context(self):
        """An SSL context that trusts only the registry's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def open(self, path, headers=None):
        """GET path over HTTPS, trusting the CA, never through a proxy."""
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=self.trusting_context()),
        )
        request = urllib.request.Request(self.url + path, headers=headers or {})
        return opener.open(request, timeout=30)


def gunicorn_flags(printed):
    """The flags on the `gunicorn --certfile ...` line `registry cert` printed."""
    [line] = [line for line in printed.splitlines() if "--certfile" in line]
    command = shlex.split(line)
    assert command[0] == "gunicorn"
    return command[1:]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """gunicorn on 127.0.0.1, TLS only, with a certificate for HOSTNAME."""
    tmp = tmp_path_factory.mktemp("tls-registry")
    port = free_port()
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_TLS_DIR": str(tmp / "tls"),
    }
    server = TLSServer(port, tmp / "storage", env, tmp / "tls" / "trust" / "ca.crt")
    printed = server.flask(
        "registry", "cert", HOSTNAME, "127.0.0.1", "--port", str(port)
    )

    flags = gunicorn_flags(printed)
    with serving(server, tmp, "--bind", f"127.0.0.1:{port}", *flags):
        yield server


@pytest.fixture
def hello_tls(tls_server, dockerd, busybox_image, tmp_path):
    """The busybox image, saved by docker and imported as hello-tls:latest."""
    archive = tmp_path / "img.tar"
    dockerd.run("save", "--output", str(archive), busybox_image.name)
    dockerd.run("rmi", busybox_image.name)
    tls_server.flask("registry", "import", str(archive), "hello-tls:latest")
    return f"{tls_server.host}/hello-tls:latest"


@pytest.fixture
def docker_trusts(tls_server):
    """Put the CA where dockerd looks for this registry; remove it afterwards."""
    folder = DOCKER_CERTS / tls_server.host
    if folder.exists():
        pytest.fail(f"{folder} exists already; not touching it", pytrace=False)
    made_parent = not DOCKER_CERTS.exists()
    folder.mkdir(parents=True)
    try:
        shutil.copy(tls_server.ca_file, folder / "ca.crt")
        yield folder
    finally:
        shutil.rmtree(folder)
        if made_parent and not any(DOCKER_CERTS.iterdir()):
            DOCKER_CERTS.rmdir()


def handshake(tls_server, name):
    """Connect to 127.0.0.1 and verify the server's certificate for name."""
    context = tls_server.trusting_context()
    with (
        socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        return tls.version()


@pytest.mark.parametrize("name", [HOSTNAME, "127.0.0.1"])
def test_the_certificate_verifies_in_a_handshake_for_each_name(tls_server, name):
    assert handshake(tls_server, name) in {"TLSv1.2", "TLSv1.3"}


def test_the_certificate_does_not_verify_for_another_name(tls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_server, "codehex-local")


def speaks_plain_http(port):
    """True if the port answers an HTTP request sent without TLS."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/v2/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def test_plain_http_is_not_served(tls_server):
    assert not speaks_plain_http(tls_server.port)


def test_the_v2_base_answers_over_https_by_name(tls_server):
    assert tls_server.answers()


def test_skopeo_verifies_the_registry_with_cert_dir(skopeo, tls_server, hello_tls):
    printed = skopeo(
        "inspect", "--cert-dir", str(tls_server.ca_file.parent), f"docker://{hello_tls}"
    )

    assert '"Digest": "sha256:' in printed


def test_skopeo_refuses_the_registry_without_its_ca(skopeo, hello_tls):
    cmd = [need("skopeo"), "--insecure-policy", "inspect", f"docker://{hello_tls}"]

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    assert done.returncode != 0
    assert "certificate signed by unknown authority" in done.stderr


def test_docker_pulls_by_name_over_tls_with_the_ca_in_certs_d(
    tls_server, dockerd, busybox_image, hello_tls, docker_trusts
):
    dockerd.run("pull", hello_tls)

    printed = dockerd.run("run", "--rm", "--network", "none", hello_tls)

    assert printed.strip() == busybox_image.line
    assert not speaks_plain_http(tls_server.port)
