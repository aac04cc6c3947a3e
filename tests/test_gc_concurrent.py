"""Garbage collection running in a loop while real gunicorn workers take pushes.

Each push uploads, mounts or merely checks (HEAD) its blobs, then waits until
a whole collection has run before it puts the manifest: the moment when a
collector that ignored fresh work would take the blobs away. Afterwards every
pushed image is pulled back and checked against its digests, and the garbage
left in the tree before the pushes must be gone.
"""

import hashlib
import json
import os
import threading
import traceback
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from app.gc import collect_garbage
from app.reference import compute_digest
from app.storage.filesystem import FilesystemStorage
from tests.e2e.conftest import DIRECT, Server, free_port, serving
from tests.test_gc import HOUR, age_everything

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PUSHERS = 4
WAYS = ("monolithic", "streamed", "chunked", "mount")
IMAGES_PER_PUSHER = 3
SEED = "load/seed"
# Old and unreferenced when the pushes start; every image uses it again.
REUSED = b"an old layer that every new image uses again" * 1000
# Old and unreferenced, and nothing uses it again: the collector must take it.
DOOMED = b"an old layer that nothing will ever use again" * 1000
# Pushed by every pusher at once.
COMMON = os.urandom(200_000)
# Collection grace: far longer than one push takes, far shorter than the age
# given to the garbage stored before the pushes.
GRACE = 600
WAIT = 120


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Collector:
    """Collect garbage in a loop in a thread, counting the completed runs."""

    def __init__(self, storage):
        self.storage = storage
        self.runs = []
        self.error = None
        self.stopping = threading.Event()
        # The loop starts once every pusher holds blobs it has not yet used in
        # a manifest, so the first collection finds the old garbage still there.
        self.starting = threading.Barrier(PUSHERS + 1)
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        try:
            self.starting.wait()
        except threading.BrokenBarrierError:
            return  # the pushers failed before the collections were to start
        try:
            while not self.stopping.is_set():
                result = collect_garbage(
                    self.storage, grace=GRACE, untagged=True, upload_expiry=HOUR
                )
                with self.changed:
                    self.runs.append(result)
                    self.changed.notify_all()
        except BaseException:
            with self.changed:
                self.error = traceback.format_exc()
                self.changed.notify_all()

    def wait_for_a_whole_run(self, first=False):
        """Return once a collection that started after this call has finished."""
        if first:
            self.starting.wait(timeout=WAIT)
        with self.changed:
            target = len(self.runs) + 2
            done = self.changed.wait_for(
                lambda: (
                    len(self.runs) >= target or self.error or self.stopping.is_set()
                ),
                timeout=WAIT,
            )
        assert done and not self.stopping.is_set() and self.error is None, self.error

    def finish(self):
        with self.changed:
            self.stopping.set()
            self.changed.notify_all()
        self.starting.abort()
        self.thread.join(timeout=WAIT)
        assert self.error is None, self.error


class Client:
    """A pushing and pulling client holding one token for every repository."""

    def __init__(self, server, names):
        self.server = server
        scopes = [("scope", f"repository:{name}:pull,push") for name in names]
        query = urlencode([("service", "registry"), *scopes])
        with server.open(f"/token?{query}") as response:
            token = json.load(response)["token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def send(self, method, path, data=None, headers=None):
        """Return (status, headers, body) of a request to the server."""
        url = path if path.startswith("http") else self.server.url + path
        request = urllib.request.Request(
            url, data=data, method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with DIRECT.open(request, timeout=WAIT) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def expect(self, status, method, path, data=None, headers=None):
        """Send a request that must answer ``status``; return its headers and body."""
        answer, headers, body = self.send(method, path, data, headers)
        assert answer == status, (method, path, answer, body)
        return headers, body


def push_blob(client, name, data, way):
    """Put a blob into a repository one of the ways clients do."""
    digest = digest_of(data)
    status, _headers, _body = client.send("HEAD", f"/v2/{name}/blobs/{digest}")
    if status == 200:
        return  # as docker does: the repository holds it, skip the upload
    uploads = f"/v2/{name}/blobs/uploads/"
    if way == "monolithic":
        octets = {"Content-Type": "application/octet-stream"}
        client.expect(201, "POST", f"{uploads}?digest={digest}", data, octets)
        return
    query = f"?mount={digest}&from={SEED}" if way == "mount" else ""
    status, headers, _body = client.send("POST", uploads + query)
    if status == 201:
        return
    location = headers["Location"]
    if way == "chunked":
        middle = len(data) // 2
        for start, chunk in ((0, data[:middle]), (middle, data[middle:])):
            content_range = {"Content-Range": f"{start}-{start + len(chunk) - 1}"}
            location = patch(client, location, chunk, content_range)
    else:
        location = patch(client, location, iter([data]))
    separator = "&" if "?" in location else "?"
    client.expect(201, "PUT", f"{location}{separator}digest={digest}")


def patch(client, location, data, headers=None):
    """Send bytes (an iterable of them goes chunked) to an upload; return Location."""
    headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    return client.expect(202, "PATCH", location, data, headers)[0]["Location"]


def descriptor(media_type, data):
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def image_manifest(client, collector, name, number, way):
    """Push an image's blobs, wait for a collection, return its manifest bytes.

    Every blob but the config has been in the registry a long time; the first
    image of each repository checks it with HEAD, uploads it again or mounts it.
    """
    config = json.dumps({"image": name, "number": number}).encode()
    layers = [REUSED, COMMON, os.urandom(50_000)]
    for blob in (config, *layers):
        push_blob(client, name, blob, way)
    collector.wait_for_a_whole_run(first=number == 0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }
    return json.dumps(manifest).encode()


def push_repository(client, collector, index):
    """Push the images of repository ``load/<index>``; return what was pushed."""
    name = f"load/{index}"
    pushed = []
    for number in range(IMAGES_PER_PUSHER):
        way = WAYS[(index + number) % len(WAYS)]
        pushed.append(push_image(client, collector, name, number, way))
    return pushed


def push_image(client, collector, name, number, way):
    """Push an image, or an index over one, under tag ``v<number>``."""
    body = image_manifest(client, collector, name, number, way)
    content_type = {"Content-Type": OCI_MANIFEST}
    if number % 2:
        child = f"/v2/{name}/manifests/{digest_of(body)}"
        client.expect(201, "PUT", child, body, content_type)
        collector.wait_for_a_whole_run()
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, body)],
        }
        body, content_type = json.dumps(index).encode(), {"Content-Type": OCI_INDEX}
    client.expect(201, "PUT", f"/v2/{name}/manifests/v{number}", body, content_type)
    return name, f"v{number}", digest_of(body)


def check_pulled(client, name, reference, digest):
    """Pull a manifest and everything it references; compare every digest."""
    headers, body = client.expect(200, "GET", f"/v2/{name}/manifests/{reference}")
    assert digest_of(body) == digest == headers["Docker-Content-Digest"]
    document = json.loads(body)
    for child in document.get("manifests", []):
        check_pulled(client, name, child["digest"], child["digest"])
    for blob in [document.get("config"), *document.get("layers", [])]:
        if blob is not None:
            url = f"/v2/{name}/blobs/{blob['digest']}"
            assert digest_of(client.expect(200, "GET", url)[1]) == blob["digest"]


def seed_garbage(storage, names):
    """Leave old, unreferenced blobs and links, as deleted images leave them."""
    reused = storage.write_blob([REUSED])
    for name in [SEED, *names[::2]]:
        storage.link_blob(name, reused)
    storage.link_blob(SEED, storage.write_blob([DOOMED]))
    age_everything(storage)


@pytest.fixture
def server(tmp_path):
    """Real gunicorn on 127.0.0.1 with its own storage."""
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "REGISTRY_ANONYMOUS_PUSH": "true",
    }
    server = Server(free_port(), tmp_path / "storage", env)
    with serving(server, tmp_path, "--bind", server.host):
        yield server


def test_pushes_during_collections_pull_back_whole(server):
    names = [f"load/{number}" for number in range(PUSHERS)]
    storage = FilesystemStorage(server.storage_root)
    seed_garbage(storage, names)
    client = Client(server, [*names, SEED])
    collector = Collector(storage)

    collector.thread.start()
    with ThreadPoolExecutor(PUSHERS) as pool:
        futures = [
            pool.submit(push_repository, client, collector, index)
            for index in range(PUSHERS)
        ]
        try:
            pushed = [image for future in futures for image in future.result()]
        finally:
            collector.finish()

    for name, tag, digest in pushed:
        check_pulled(client, name, tag, digest)
    collected = {item.key for run in collector.runs for item in run.blobs}
    assert digest_of(DOOMED) in collected
    assert not storage.has_blob(compute_digest(DOOMED))
