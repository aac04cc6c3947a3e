"""A server killed in the middle of an upload restarts with a consistent tree.

gunicorn runs in a process group of its own, so the test can kill the arbiter
and its workers at once with SIGKILL, as a crash or a power cut would, then
start a new server on the same storage root and check what it finds there.
"""

import hashlib
import json
import os
import signal
import socket
import sys
import time
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import REPO_ROOT, Server, free_port, spawn, wait_for
from tests.e2e.test_upload_integrity import send
from tests.registry_api import digest_of

NAME = "crash/app"
BLOB = os.urandom(4 * 1024 * 1024)
HALF = len(BLOB) // 2
WRITE_WAIT = 60


class Registry:
    """A gunicorn serving one storage root, that can be killed and started again."""

    def __init__(self, tmp):
        self.tmp = tmp
        env = {
            **os.environ,
            "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
            "REGISTRY_ANONYMOUS_PUSH": "true",
        }
        self.server = Server(free_port(), tmp / "storage", env)
        self.proc = None

    def start(self):
        log = self.tmp / "gunicorn.log"
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        cmd += ["--bind", self.server.host]
        self.proc = spawn(
            cmd, log, cwd=REPO_ROOT, env=self.server.env, start_new_session=True
        )
        wait_for("gunicorn", self.server.answers, self.proc, log)

    def kill(self):
        """SIGKILL the arbiter and its workers: the group this test started."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def authorization(self):
        query = urlencode({"scope": f"repository:{NAME}:pull,push"})
        with self.server.open(f"/token?{query}") as response:
            return {"Authorization": f"Bearer {json.load(response)['token']}"}


@pytest.fixture
def registry(tmp_path):
    registry = Registry(tmp_path)
    registry.start()
    try:
        yield registry
    finally:
        registry.kill()


def wait_for_bytes(path, count):
    """Wait (bounded) until the file at ``path`` holds at least ``count`` bytes."""
    deadline = time.monotonic() + WRITE_WAIT
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"{path} never reached {count} bytes")


def start_body(server, method, path, headers, declared, part):
    """Send headers and the first part of a body; return the open socket."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {server.host}"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    head += [f"Content-Length: {declared}", "", ""]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall("\r\n".join(head).encode() + part)
    return sock


def inconsistencies(root):
    """Return what is wrong with a storage tree: bad blobs and dangling links."""
    problems = []
    for path in (root / "blobs").glob("*/*/*"):
        actual = hashlib.new(path.parts[-3], path.read_bytes()).hexdigest()
        if actual != path.name:
            problems.append(f"{path} holds other content")
    for link in (root / "repos").glob("**/_*/*/*"):
        if link.parent.parent.name in ("_blobs", "_manifests"):
            algorithm, hex_digest = link.parent.name, link.name
            blob = root / "blobs" / algorithm / hex_digest[:2] / hex_digest
            if not blob.exists():
                problems.append(f"{link} names a missing blob")
    return problems


def crash_during_a_patch(registry):
    """Kill the server once half of a PATCH is on disk, then start it again.

    Returns the upload's location and the path of its data file.
    """
    authorization = registry.authorization()
    location = send(
        registry.server, "POST", f"/v2/{NAME}/blobs/uploads/", authorization
    )[1]["Location"]
    upload_data = registry.server.storage_root / "uploads"
    upload_data = upload_data / location.rsplit("/", 1)[1] / "data"
    sock = start_body(
        registry.server, "PATCH", location, authorization, len(BLOB), BLOB[:HALF]
    )
    wait_for_bytes(upload_data, HALF)
    registry.kill()
    sock.close()
    registry.start()
    return location, upload_data


def test_killed_during_a_patch_restarts_with_the_bytes_written_so_far(registry):
    location, _data = crash_during_a_patch(registry)

    authorization = registry.authorization()
    assert inconsistencies(registry.server.storage_root) == []
    status, headers, _body = send(registry.server, "GET", location, authorization)
    assert (status, headers["Range"]) == (204, f"0-{HALF - 1}")


def test_upload_resumed_after_a_crash_makes_the_right_blob(registry):
    location, upload_data = crash_during_a_patch(registry)

    authorization = registry.authorization()
    size = upload_data.stat().st_size
    rest = {**authorization, "Content-Range": f"{size}-{len(BLOB) - 1}"}
    assert send(registry.server, "PATCH", location, rest, BLOB[size:])[0] == 202
    path = f"{location}?digest={digest_of(BLOB)}"
    assert send(registry.server, "PUT", path, authorization)[0] == 201
    blob_url = f"/v2/{NAME}/blobs/{digest_of(BLOB)}"
    assert send(registry.server, "GET", blob_url, authorization)[2] == BLOB


def test_killed_during_a_monolithic_post_stores_no_blob(registry):
    authorization = registry.authorization()
    path = f"/v2/{NAME}/blobs/uploads/?digest={digest_of(BLOB)}"
    temporary = registry.server.storage_root / "tmp"
    sock = start_body(
        registry.server, "POST", path, authorization, len(BLOB), BLOB[:HALF]
    )
    deadline = time.monotonic() + WRITE_WAIT
    while not any(temporary.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    registry.kill()
    sock.close()

    registry.start()
    authorization = registry.authorization()
    assert inconsistencies(registry.server.storage_root) == []
    blob_url = f"/v2/{NAME}/blobs/{digest_of(BLOB)}"
    assert send(registry.server, "GET", blob_url, authorization)[0] == 404
