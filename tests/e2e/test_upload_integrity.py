"""Uploads against the real gunicorn server: lying bodies and concurrent pushes.

These need a real server because what they test lives between the socket and
the application: a client that closes its side before sending all it declared,
several workers taking the chunks of one upload, and two clients committing
the same blob at the same moment.
"""

import hashlib
import http.client
import json
import os
import socket
import threading
import uuid
from urllib.parse import urlencode

import pytest

from tests.registry_api import digest_of, tree_state

NAME = "integrity/app"
BLOB = os.urandom(256 * 1024)
CLIENTS = 4


@pytest.fixture(scope="module")
def authorization(registry_server):
    """The Authorization header for pull and push on NAME."""
    query = urlencode({"scope": f"repository:{NAME}:pull,push"})
    with registry_server.open(f"/token?{query}") as response:
        token = json.load(response)["token"]
    return {"Authorization": f"Bearer {token}"}


def send(server, method, path, headers, body=b""):
    """Send one request on its own connection; return (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def send_short(server, method, path, headers, body, declared):
    """Declare ``declared`` bytes, send ``body`` (fewer), close our side, read."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {server.host}"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    head += [f"Content-Length: {declared}", "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall("\r\n".join(head).encode() + body)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def error_code(body):
    return body["errors"][0]["code"]


def open_upload(server, authorization):
    status, headers, _body = send(
        server, "POST", f"/v2/{NAME}/blobs/uploads/", authorization
    )
    assert status == 202
    return headers["Location"]


def upload_range(server, authorization, location):
    return send(server, "GET", location, authorization)[1]["Range"]


def test_monolithic_post_cut_short_is_size_invalid_and_stores_nothing(
    registry_server, authorization
):
    before = tree_state(registry_server.storage_root)
    path = f"/v2/{NAME}/blobs/uploads/?digest={digest_of(BLOB)}"
    status, body = send_short(
        registry_server, "POST", path, authorization, BLOB[:1000], len(BLOB)
    )
    assert (status, error_code(body)) == (400, "SIZE_INVALID")
    assert tree_state(registry_server.storage_root) == before


@pytest.mark.parametrize("content_range", [None, f"1000-{len(BLOB) - 1}"])
def test_patch_cut_short_is_size_invalid_and_leaves_the_upload(
    registry_server, authorization, content_range
):
    location = open_upload(registry_server, authorization)
    send(registry_server, "PATCH", location, authorization, BLOB[:1000])
    before = tree_state(registry_server.storage_root)
    headers = {**authorization}
    if content_range:
        headers["Content-Range"] = content_range
    status, body = send_short(
        registry_server, "PATCH", location, headers, BLOB[1000:5000], len(BLOB) - 1000
    )
    assert (status, error_code(body)) == (400, "SIZE_INVALID")
    assert tree_state(registry_server.storage_root) == before


def test_closing_put_cut_short_stores_no_blob(registry_server, authorization):
    location = open_upload(registry_server, authorization)
    path = f"{location}?digest={digest_of(BLOB)}"
    before = tree_state(registry_server.storage_root)
    status, body = send_short(
        registry_server, "PUT", path, authorization, BLOB[:1000], len(BLOB)
    )
    assert (status, error_code(body)) == (400, "SIZE_INVALID")
    assert tree_state(registry_server.storage_root) == before


def test_content_length_shorter_than_the_body_stores_no_blob(
    registry_server, authorization
):
    blob = os.urandom(4000)
    path = f"/v2/{NAME}/blobs/uploads/?digest={digest_of(blob)}"
    before = tree_state(registry_server.storage_root)
    status, body = send_short(registry_server, "POST", path, authorization, blob, 3000)
    assert (status, error_code(body)) == (400, "DIGEST_INVALID")
    assert tree_state(registry_server.storage_root) == before


def test_chunks_on_separate_connections_make_one_blob(registry_server, authorization):
    location = open_upload(registry_server, authorization)
    step = len(BLOB) // 8
    for start in range(0, len(BLOB), step):
        chunk = BLOB[start : start + step]
        headers = {
            **authorization,
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
        }
        assert send(registry_server, "PATCH", location, headers, chunk)[0] == 202
    assert upload_range(registry_server, authorization, location) == (
        f"0-{len(BLOB) - 1}"
    )
    path = f"{location}?digest={digest_of(BLOB, 'sha512')}"
    assert send(registry_server, "PUT", path, authorization)[0] == 201


def push_together(server, authorization, push):
    """Run ``push`` in CLIENTS threads released at once; return their statuses."""
    barrier = threading.Barrier(CLIENTS)
    statuses = [None] * CLIENTS

    def client(number):
        prepared = push.prepare()
        barrier.wait(timeout=60)
        statuses[number] = push.finish(prepared)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


class MonolithicPost:
    """POST ?digest= with the whole blob."""

    def __init__(self, server, authorization, blob):
        self.server, self.authorization, self.blob = server, authorization, blob

    def prepare(self):
        return f"/v2/{NAME}/blobs/uploads/?digest={digest_of(self.blob)}"

    def finish(self, path):
        return send(self.server, "POST", path, self.authorization, self.blob)[0]


class PostThenPut(MonolithicPost):
    """POST to open an upload beforehand, then PUT the whole blob."""

    def prepare(self):
        location = open_upload(self.server, self.authorization)
        return f"{location}?digest={digest_of(self.blob)}"

    def finish(self, path):
        return send(self.server, "PUT", path, self.authorization, self.blob)[0]


def stored_copies(root, blob):
    """Return the files under ``root`` whose content is ``blob``."""
    wanted = hashlib.sha256(blob).hexdigest()
    state = tree_state(root)
    return sorted(path for path, digest in state.items() if digest == wanted)


@pytest.mark.parametrize("flow", [MonolithicPost, PostThenPut])
def test_same_blob_pushed_at_once_succeeds_for_all_and_is_kept_once(
    registry_server, authorization, flow
):
    blob = os.urandom(2 * 1024 * 1024)
    push = flow(registry_server, authorization, blob)
    statuses = push_together(registry_server, authorization, push)
    assert statuses == [201] * CLIENTS
    hex_digest = hashlib.sha256(blob).hexdigest()
    blob_path = os.path.join("blobs", "sha256", hex_digest[:2], hex_digest)
    assert stored_copies(registry_server.storage_root, blob) == [blob_path]


def test_blob_pushed_at_once_is_served_whole(registry_server, authorization):
    blob = os.urandom(1024 * 1024)
    push = MonolithicPost(registry_server, authorization, blob)
    push_together(registry_server, authorization, push)
    status, _headers, body = send(
        registry_server, "GET", f"/v2/{NAME}/blobs/{digest_of(blob)}", authorization
    )
    assert (status, body == blob) == (200, True)
    assert os.listdir(registry_server.storage_root / "tmp") == []


class OneReader:
    """One buffered reader of a socket for several responses in a row.

    http.client reads each response through the socket's ``makefile`` and
    closes it at the end; here every response gets this same reader, and
    closing it is left to the socket.
    """

    def __init__(self, sock):
        self.reader = sock.makefile("rb")

    def makefile(self, *_args, **_kwargs):
        return self

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def close(self):
        pass


def test_request_pipelined_behind_a_blob_is_answered(registry_server, authorization):
    blob = os.urandom(3 * 1024 * 1024 + 7)
    path = f"/v2/{NAME}/blobs/uploads/?digest={digest_of(blob, 'sha512')}"
    head = [f"POST {path} HTTP/1.1", f"Host: {registry_server.host}"]
    head += [f"{key}: {value}" for key, value in authorization.items()]
    head += [f"Content-Length: {len(blob)}", "", ""]
    follow = f"HEAD /v2/{NAME}/blobs/{digest_of(blob, 'sha512')} HTTP/1.1\r\n"
    follow += "".join(f"{key}: {value}\r\n" for key, value in authorization.items())
    follow += f"Host: {registry_server.host}\r\n\r\n"

    with socket.create_connection(("127.0.0.1", registry_server.port), 60) as sock:
        sock.sendall("\r\n".join(head).encode() + blob + follow.encode())
        answers = []
        reader = OneReader(sock)
        for method in ("POST", "HEAD"):
            response = http.client.HTTPResponse(reader, method=method)
            response.begin()
            response.read()
            answers.append((response.status, response.getheader("Content-Length")))

    assert answers == [(201, "0"), (200, str(len(blob)))]


# A PATCH or PUT refused before its body is read: gunicorn drains the body,
# and the next request on the kept-alive connection is read whole.
REFUSED_BODIES = {
    "chunk sent again": ("PATCH", 0, 416, "BLOB_UPLOAD_INVALID"),
    "chunk past the end": ("PATCH", 20, 416, "BLOB_UPLOAD_INVALID"),
    "upload unknown": ("PATCH", None, 404, "BLOB_UPLOAD_UNKNOWN"),
    "closing PUT of an unknown upload": ("PUT", None, 404, "BLOB_UPLOAD_UNKNOWN"),
}


@pytest.mark.parametrize("method,start,status,code", REFUSED_BODIES.values(),
                         ids=REFUSED_BODIES)  # fmt: skip
@pytest.mark.parametrize("size", [3, 10, 5000])
def test_a_body_refused_unread_leaves_the_connection_in_step(
    registry_server, authorization, method, start, status, code, size
):
    connection = http.client.HTTPConnection("127.0.0.1", registry_server.port, 60)
    octets = {**authorization, "Content-Type": "application/octet-stream"}

    def call(method, path, body=b"", headers=octets):
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()

    uploads = f"/v2/{NAME}/blobs/uploads/"
    try:
        connection.request("POST", uploads, headers=authorization)
        started = connection.getresponse()
        started.read()
        location = started.getheader("Location")
        assert (
            call("PATCH", location, b"x" * 10, {**octets, "Content-Range": "0-9"})[0]
            == 202
        )
        headers = dict(octets)
        if start is None:
            location = f"{uploads}{uuid.uuid4()}"
        else:
            headers["Content-Range"] = f"{start}-{start + size - 1}"
        if method == "PUT":
            location += f"?digest={digest_of(b'y' * size, 'sha256')}"

        refused = call(method, location, b"y" * size, headers)
        following = call("GET", f"{uploads}{uuid.uuid4()}", headers=authorization)
    finally:
        connection.close()

    assert (refused[0], error_code(json.loads(refused[1]))) == (status, code)
    assert (following[0], error_code(json.loads(following[1]))) == (
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
