"""Reads a kept-alive connection gets answered by the worker's poller thread.

The worker answers a manifest or tag list GET on a kept-alive connection in
the thread that polls every connection, so these tests hold it to two things:
each answer is the one a new connection gets (which a pool thread serves), and
a client that stops reading its answers never stalls that thread, which every
other client of the worker waits on.
"""

import contextlib
import hashlib
import http.client
import json
import socket
import time
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import serving
from tests.e2e.test_hostile_http import start_server

NAME = "inline/app"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
# A manifest far larger than the socket buffers of a client that reads
# nothing, so that its answers back up into the server.
ANNOTATION_SIZE = 512 * 1024
# Requests sent one at a time by the client that reads no answers.
UNREAD_REQUESTS = 24
PAUSE = 0.05
# How long another client may wait for its answer meanwhile: far below the
# body timeout a stalled send would wait for.
PROMPT = 5
BODY_TIMEOUT = 60
# Response fields that differ between two answers to the same request.
VARYING = {"date"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A registry of one worker, so that every connection shares its poller."""
    tmp = tmp_path_factory.mktemp("inline")
    server = start_server(tmp, REGISTRY_BODY_TIMEOUT=str(BODY_TIMEOUT))
    with serving(server, tmp, "--bind", server.host, "--workers", "1"):
        yield server


def token(server, actions):
    query = urlencode({"scope": f"repository:{NAME}:{actions}"})
    with server.open(f"/token?{query}") as response:
        return json.load(response)["token"]


def push_image(server):
    """Push an image with a large manifest; return (authorization, its body)."""
    push = {"Authorization": f"Bearer {token(server, 'pull,push')}"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    descriptors = []
    for data in (b"{}", b"layer"):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        connection.request(
            "POST", f"/v2/{NAME}/blobs/uploads/?digest={digest}", data, push
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 201
        descriptors.append({"digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **descriptors[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    **descriptors[1]}],
        "annotations": {"filler": "x" * ANNOTATION_SIZE},
    }  # fmt: skip
    body = json.dumps(manifest).encode()
    headers = {**push, "Content-Type": MANIFEST_TYPE}
    connection.request("PUT", f"/v2/{NAME}/manifests/v1", body, headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 201
    connection.close()
    return f"Bearer {token(server, 'pull')}", body


@pytest.fixture(scope="module")
def pushed(server):
    return push_image(server)


@pytest.fixture(scope="module")
def pushed_to():
    """Push the image to a server once; return what push_image returns."""
    done = {}

    def push(server):
        if server.port not in done:
            done[server.port] = push_image(server)
        return done[server.port]

    return push


def head(method, path, *fields):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *fields, "", ""]
    return "\r\n".join(lines).encode()


class Reader:
    """One buffered reader of a socket, for every answer read from it in turn.

    It stands in for the socket and for its file: each answer's reading ends
    by closing its file, which must not lose what was read past the answer.
    """

    def __init__(self, sock):
        self.file = sock.makefile("rb")

    def makefile(self, mode):
        return self

    def __getattr__(self, name):
        return getattr(self.file, name)

    def close(self):
        pass


def read_answer(source, method="GET"):
    """Return (status, headers without the varying ones, body) of the next answer.

    ``source`` is a socket, or a Reader of one when answers are read in a row.
    """
    reader = source if isinstance(source, Reader) else Reader(source)
    response = http.client.HTTPResponse(reader, method=method)
    response.begin()
    body = response.read()
    headers = {
        key.lower(): value
        for key, value in response.getheaders()
        if key.lower() not in VARYING
    }
    return response.status, headers, body


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), 30)


def requests(authorization):
    """(method, path, fields) of reads, answered and refused."""
    auth = f"Authorization: {authorization}"
    manifest = f"/v2/{NAME}/manifests/v1"
    return [
        ("GET", manifest, [auth, f"Accept: {MANIFEST_TYPE}"]),
        ("HEAD", manifest, [auth]),
        ("GET", f"/v2/{NAME}/tags/list", [auth]),
        ("GET", f"/v2/{NAME}/tags/list?n=1", [auth]),
        ("GET", f"/v2/{NAME}/manifests/nosuchtag", [auth]),
        ("GET", manifest, ["Authorization: Bearer not-a-token"]),
        ("GET", manifest, []),
        ("GET", f"/v2/{NAME}/manifests/sha256:{'0' * 64}", [auth]),
        ("GET", "/v2/Bad..Name/manifests/v1", [auth]),
    ]


def test_kept_alive_answers_are_those_of_a_new_connection(server, pushed):
    authorization, body = pushed
    cases = requests(authorization)
    fresh = []
    for method, path, fields in cases:
        with connect(server) as sock:
            sock.sendall(head(method, path, *fields))
            fresh.append(read_answer(sock, method))
    statuses = [status for status, _, _ in fresh]
    assert statuses == [200, 200, 200, 200, 404, 401, 401, 404, 400]
    assert fresh[0][2] == body

    with connect(server) as sock:
        sock.sendall(head("GET", "/healthz"))  # the connection is kept alive now
        assert read_answer(sock)[0] == 200
        for (method, path, fields), expected in zip(cases, fresh, strict=True):
            sock.sendall(head(method, path, *fields))
            assert read_answer(sock, method) == expected, (method, path)


@contextlib.contextmanager
def silent_client(server):
    """A kept-alive connection with a receive buffer too small for an answer."""
    with socket.socket() as silent:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.settimeout(30)
        silent.connect(("127.0.0.1", server.port))
        silent.sendall(head("GET", "/healthz"))
        assert read_answer(silent)[0] == 200
        yield silent


def test_a_client_that_reads_no_answers_stalls_no_one(server, pushed):
    authorization, body = pushed
    request = head("GET", f"/v2/{NAME}/manifests/v1", f"Authorization: {authorization}")
    with silent_client(server) as silent:
        for _ in range(UNREAD_REQUESTS):  # one at a time, reading none
            silent.sendall(request)
            time.sleep(PAUSE)

        started = time.monotonic()
        with connect(server) as other:
            other.settimeout(PROMPT)
            for _ in range(3):
                other.sendall(request)
                status, _, answer = read_answer(other)
                assert (status, answer) == (200, body)
        assert time.monotonic() - started < PROMPT

        reader = Reader(silent)
        for _ in range(UNREAD_REQUESTS):  # every answer comes whole, in order
            status, _, answer = read_answer(reader)
            assert (status, answer) == (200, body)
        silent.sendall(head("GET", "/healthz"))
        assert read_answer(reader)[0] == 200


MALFORMED = {
    "header too large": ["X-Big: " + "a" * 9000],
    "too many headers": [f"X-{number}: 1" for number in range(101)],
    "folded header": ["X-Folded: a", "\tb"],
    "no colon": ["X-No-Colon"],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED)
def test_a_malformed_read_is_refused_as_on_a_new_connection(server, pushed, fields):
    authorization, _ = pushed
    request = head(
        "GET", f"/v2/{NAME}/manifests/v1", f"Authorization: {authorization}", *fields
    )
    with connect(server) as sock:
        sock.sendall(request)
        expected = read_answer(sock)
    assert expected[0] in (400, 431)
    assert json.loads(expected[2])["errors"][0]["code"] == "UNSUPPORTED"

    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(head("GET", "/healthz"))
        assert read_answer(reader)[0] == 200
        sock.sendall(request)
        assert read_answer(reader) == expected
        assert reader.read() == b""  # and the connection is closed


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    """One worker that gives up on a stalled client after a second."""
    tmp = tmp_path_factory.mktemp("impatient")
    server = start_server(tmp, REGISTRY_BODY_TIMEOUT="1")
    with serving(server, tmp, "--bind", server.host, "--workers", "1"):
        yield server


@pytest.mark.parametrize("pipelined", [False, True], ids=["inline", "thread"])
def test_a_client_that_stops_reading_is_cut_off_with_one_line(
    impatient_server, pushed_to, pipelined
):
    authorization, _ = pushed_to(impatient_server)
    request = head("GET", f"/v2/{NAME}/manifests/v1", f"Authorization: {authorization}")
    before = impatient_server.log.read_text()
    with silent_client(impatient_server) as silent:
        if pipelined:  # read at once, answered by a thread
            silent.sendall(request * UNREAD_REQUESTS)
        for _ in range(0 if pipelined else UNREAD_REQUESTS):  # each inline
            silent.sendall(request)
            time.sleep(PAUSE)
        deadline = time.monotonic() + 30
        while "stalled" not in impatient_server.log.read_text()[len(before) :]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with contextlib.suppress(ConnectionResetError):  # unread data: a reset
            while silent.recv(1 << 20):
                pass  # what was sent, then the end: the connection is closed

    logged = impatient_server.log.read_text()[len(before) :]
    assert logged.count("stalled for 1 s: connection closed") == 1
    assert "Traceback" not in logged
