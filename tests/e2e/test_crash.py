"""gunicorn killed in the middle of uploads and manifest puts restarts consistent.

Each test starts its own gunicorn on a storage root of its own, kills the
master and every worker with SIGKILL (no handler runs, nothing is cleaned
up), starts gunicorn again on the same root and checks the tree: no partial
blob, every tag on a stored manifest, every manifest's blobs present.
"""

import contextlib
import hashlib
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DIRECT,
    REPO_ROOT,
    Server,
    free_port,
    spawn,
    stop,
    wait_for,
)

MIB = 1024 * 1024
BIG_BLOB_SIZE = 24 * MIB
SENT_BEFORE_KILL = 6 * MIB
KILL_ROUNDS = 5
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
INDEX_TYPES = {OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"}


class Registry:
    """A gunicorn that this test started, and a small push client for it."""

    def __init__(self, root, repository):
        self.root = root
        self.repository = repository
        self.proc = None
        self.server = None
        self.token = None

    def start(self):
        """Start gunicorn on a fresh port over the same storage root."""
        env = {
            **os.environ,
            "REGISTRY_STORAGE_ROOT": str(self.root / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(self.root / "signing.key"),
            "REGISTRY_ANONYMOUS_PUSH": "true",
        }
        log = self.root / "gunicorn.log"
        self.server = Server(free_port(), self.root / "storage", env, log=log)
        cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        cmd += ["--bind", self.server.host, "--workers", "2"]
        self.proc = spawn(cmd, log, cwd=REPO_ROOT, env=env)
        wait_for("gunicorn", self.server.answers, self.proc, log)
        self.token = self.get_token()

    def kill(self):
        """SIGKILL the master and its workers: the master first stopped, so it
        cannot start a new worker while the ones it has are being killed."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        workers = child_pids(self.proc.pid)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        wait_until_gone(workers)

    def stop(self):
        """Stop gunicorn gracefully if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)

    def get_token(self):
        """A token granting pull and push on the test's repository."""
        scope = f"repository:{self.repository}:pull,push"
        query = urllib.parse.urlencode({"service": "registry", "scope": scope})
        with self.server.open(f"/token?{query}") as response:
            return json.load(response)["token"]

    def request(self, method, path, body=None, headers=None):
        """Send a request with the token; return (status, headers, body)."""
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        request = urllib.request.Request(
            self.server.url + path, data=body, headers=headers, method=method
        )
        try:
            with DIRECT.open(request, timeout=60) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def push_blob(self, data):
        """Upload a blob in one POST; return its digest."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        path = f"/v2/{self.repository}/blobs/uploads/?digest={digest}"
        status, _headers, body = self.request("POST", path, data)
        assert status == 201, body
        return digest

    def put_manifest(self, reference, manifest, media_type=OCI_MANIFEST):
        """PUT a manifest; return its digest."""
        path = f"/v2/{self.repository}/manifests/{reference}"
        body = json.dumps(manifest).encode()
        headers = {"Content-Type": media_type}
        status, headers, answer = self.request("PUT", path, body, headers)
        assert status == 201, answer
        return headers["Docker-Content-Digest"]

    def push_image(self, tag, content):
        """Push a one-layer image under ``tag``; return its descriptor."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag})
        config = descriptor(OCI_CONFIG, self.push_blob(config.encode()), config)
        layer = descriptor(OCI_LAYER, self.push_blob(content), content)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        }
        digest = self.put_manifest(tag, manifest)
        return descriptor(OCI_MANIFEST, digest, json.dumps(manifest))


def descriptor(media_type, digest, content):
    """A descriptor of content already pushed under digest."""
    return {"mediaType": media_type, "digest": digest, "size": len(content)}


def child_pids(parent):
    """The PIDs of the processes whose parent is ``parent``, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while listed
        # The command name may hold spaces and parentheses: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def wait_until_gone(pids, seconds=30):
    """Wait until none of pids runs (a zombie counts as gone); fail otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not [pid for pid in pids if is_running(pid)]:
            return
        time.sleep(0.05)
    pytest.fail(f"processes still running after SIGKILL: {pids}")


def is_running(pid):
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# Checking the tree.


def tree_problems(storage):
    """Every inconsistency of a storage tree, as readable lines; none is good."""
    problems = [f"partial blob {path}" for path in partial_blobs(storage)]
    repos = storage / "repos"
    for manifests in sorted(repos.rglob("_manifests")):
        repository = manifests.parent
        name = repository.relative_to(repos)
        problems += [
            f"{name}: {line}" for line in repository_problems(storage, repository)
        ]
    return problems


def partial_blobs(storage):
    """Blobs whose content does not hash to the name they are stored under."""
    partial = []
    for path in sorted((storage / "blobs").glob("*/*/*")):
        algorithm = path.parent.parent.name
        hasher = hashlib.new(algorithm)
        with open(path, "rb") as blob:
            while block := blob.read(MIB):
                hasher.update(block)
        if hasher.hexdigest() != path.name or path.parent.name != path.name[:2]:
            partial.append(path)
    return partial


def blob_path(storage, digest):
    algorithm, hex_digest = digest.split(":")
    return storage / "blobs" / algorithm / hex_digest[:2] / hex_digest


def repository_problems(storage, repository):
    """Tags and referrers of missing manifests, manifests missing blobs, links
    to no blob."""
    problems = []
    for tag in sorted((repository / "_tags").glob("*")):
        digest = tag.read_text().strip()
        if not manifest_link(repository, digest).is_file():
            problems.append(f"tag {tag.name} points at unstored {digest}")
    for record in sorted((repository / "_referrers").glob("*/*/*")):
        digest = json.loads(record.read_bytes())["digest"]
        if not manifest_link(repository, digest).is_file():
            problems.append(f"referrer {digest} is not stored")
    for link in sorted((repository / "_manifests").glob("*/*")):
        digest = f"{link.parent.name}:{link.name}"
        problems += manifest_problems(storage, repository, digest)
    for link in sorted((repository / "_blobs").glob("*/*")):
        if not blob_path(storage, f"{link.parent.name}:{link.name}").is_file():
            problems.append(f"link to missing blob {link.name}")
    return problems


def manifest_link(repository, digest):
    algorithm, hex_digest = digest.split(":")
    return repository / "_manifests" / algorithm / hex_digest


def manifest_problems(storage, repository, digest):
    """What a stored manifest references that the repository does not hold."""
    path = blob_path(storage, digest)
    if not path.is_file():
        return [f"manifest {digest} has no content"]
    document = json.loads(path.read_bytes())
    if document.get("mediaType") in INDEX_TYPES:
        children = [child["digest"] for child in document["manifests"]]
        return [
            f"index {digest} lacks manifest {child}"
            for child in children
            if not manifest_link(repository, child).is_file()
        ]
    blobs = [document["config"]["digest"]]
    blobs += [layer["digest"] for layer in document["layers"]]
    algorithm_hex = (blob.split(":") for blob in blobs)
    return [
        f"manifest {digest} lacks blob {algorithm}:{hex_digest}"
        for algorithm, hex_digest in algorithm_hex
        if not (repository / "_blobs" / algorithm / hex_digest).is_file()
        or not blob_path(storage, f"{algorithm}:{hex_digest}").is_file()
    ]


# Killing mid-upload.


@pytest.fixture
def registry(tmp_path):
    """A registry this test starts, kills and restarts; stopped at the end."""
    registry = Registry(tmp_path, "crash/test")
    yield registry
    registry.stop()


def open_chunked(registry, method, path):
    """Open a request with a chunked body, as docker streams a layer; keep it open."""
    connection = http.client.HTTPConnection("127.0.0.1", registry.server.port)
    connection.putrequest(method, path)
    connection.putheader("Authorization", f"Bearer {registry.token}")
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    return connection


def send_first_part(connection, data):
    """Send the first SENT_BEFORE_KILL bytes of data, one MiB a chunk."""
    for start in range(0, SENT_BEFORE_KILL, MIB):
        chunk = data[start : start + MIB]
        connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def wait_for_bytes(folder, count, seconds=60):
    """Wait until a file somewhere in folder holds at least count bytes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        files = [path for path in folder.rglob("*") if path.is_file()]
        if any(path.stat().st_size >= count for path in files):
            return
        time.sleep(0.02)
    pytest.fail(f"no file in {folder} reached {count} bytes")


def test_upload_killed_mid_stream_leaves_no_blob_and_resumes(registry):
    data = random.randbytes(BIG_BLOB_SIZE)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    registry.start()
    status, headers, _body = registry.request("POST", "/v2/crash/test/blobs/uploads/")
    assert status == 202
    location = headers["Location"]
    upload_data = registry.root / "storage" / "uploads" / location.rsplit("/", 1)[1]
    connection = open_chunked(registry, "PATCH", location)
    send_first_part(connection, data)
    wait_for_bytes(upload_data, MIB)

    registry.kill()
    connection.close()

    storage = registry.root / "storage"
    assert tree_problems(storage) == []
    assert not blob_path(storage, digest).exists()
    registry.start()
    received = resume_size(registry, location)
    assert 0 < received <= SENT_BEFORE_KILL
    assert (upload_data / "data").read_bytes() == data[:received]
    finish_upload(registry, location, data, received, digest)
    assert blob_path(storage, digest).read_bytes() == data
    assert tree_problems(storage) == []


def test_monolithic_upload_killed_mid_stream_leaves_no_blob(registry):
    data = random.randbytes(BIG_BLOB_SIZE)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    storage = registry.root / "storage"
    registry.start()
    path = f"/v2/crash/test/blobs/uploads/?digest={digest}"
    connection = open_chunked(registry, "POST", path)
    send_first_part(connection, data)
    wait_for_bytes(storage, MIB)

    registry.kill()
    connection.close()

    assert tree_problems(storage) == []
    assert not blob_path(storage, digest).exists()
    registry.start()
    assert registry.push_blob(data) == digest
    assert blob_path(storage, digest).read_bytes() == data


def resume_size(registry, location):
    """How many bytes the server holds for an upload, from GET on its URL."""
    status, headers, _body = registry.request("GET", location)
    assert status == 204
    return int(headers["Range"].split("-")[1]) + 1


def finish_upload(registry, location, data, start, digest):
    """Send the rest of data as a Content-Range chunk, then close the upload."""
    headers = {
        "Content-Range": f"{start}-{len(data) - 1}",
        "Content-Type": "application/octet-stream",
    }
    status, headers, body = registry.request("PATCH", location, data[start:], headers)
    assert status == 202, body
    location = headers["Location"]
    separator = "&" if "?" in location else "?"
    status, _headers, body = registry.request(
        "PUT", f"{location}{separator}digest={digest}"
    )
    assert status == 201, body


# Killing at random moments of manifest puts.


class Pusher(threading.Thread):
    """Pushes images and indexes in a loop until the server goes away."""

    def __init__(self, registry, round_number):
        super().__init__(daemon=True)
        self.registry = registry
        self.round_number = round_number
        self.tagged = []
        self.error = None

    def run(self):
        try:
            while True:
                self.push_one()
        except (OSError, http.client.HTTPException):
            return  # the server was killed
        except AssertionError as error:
            self.error = error

    def push_one(self):
        """Push an image, then an index of it that refers to it, each tagged."""
        tag = f"r{self.round_number}-{len(self.tagged)}"
        content = f"layer of {tag}\n".encode() * 64
        image = self.registry.push_image(tag, content)
        self.tagged.append(tag)
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [image],
            "subject": image,
        }
        self.registry.put_manifest(f"{tag}-index", index, OCI_INDEX)
        self.tagged.append(f"{tag}-index")

    def wait_for_first_push(self, seconds=60):
        """Wait until one manifest put has been answered; fail otherwise."""
        deadline = time.monotonic() + seconds
        while not self.tagged and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.tagged, self.error


def start_partial_manifest_put(registry):
    """Send a manifest PUT whose body stops halfway; return the connection."""
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", registry.server.port)
    connection.putrequest("PUT", "/v2/crash/test/manifests/half-sent")
    connection.putheader("Authorization", f"Bearer {registry.token}")
    connection.putheader("Content-Type", OCI_MANIFEST)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    connection.send(body[: len(body) // 2])
    return connection


def test_killed_at_random_moments_of_manifest_puts_restarts_consistent(registry):
    tagged = []
    for round_number in range(KILL_ROUNDS):
        registry.start()
        half_sent = start_partial_manifest_put(registry)
        pusher = Pusher(registry, round_number)
        pusher.start()
        pusher.wait_for_first_push()
        time.sleep(random.uniform(0, 0.3))

        registry.kill()
        pusher.join(timeout=60)
        half_sent.close()

        assert pusher.error is None
        assert tree_problems(registry.root / "storage") == []
        tagged += pusher.tagged
    registry.start()
    status, _headers, body = registry.request("GET", "/v2/crash/test/tags/list")
    assert status == 200
    assert set(json.loads(body)["tags"]) >= set(tagged)
    assert "half-sent" not in json.loads(body)["tags"]
