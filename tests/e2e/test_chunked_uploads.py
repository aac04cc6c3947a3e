"""Chunked upload bodies under the real gunicorn, decoded straight from its socket.

Over plain HTTP the registry decodes a ``Transfer-Encoding: chunked`` upload
itself; over TLS gunicorn's own reader does. Blobs must come out whole however
they are chunked, the connection must stay right for the requests after the
body (kept alive or pipelined behind it), and a broken body must be answered
as gunicorn's reader answers it over TLS: 400 SIZE_INVALID, nothing stored,
the connection closed.
"""

import contextlib
import hashlib
import json
import socket
import ssl
import struct
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import tests.chunked_bodies as bodies
from tests.chunked_bodies import MIB, PAYLOAD, chunked
from tests.e2e.conftest import serving
from tests.e2e.test_hostile_http import start_server, token
from tests.e2e.test_tls import HOSTNAME, TLSServer, gunicorn_flags

NAME = "chunked/app"
CLIENT_TIMEOUT = 30
# The body timeout of the servers here: a stalled body is waited out in a test.
BODY_TIMEOUT = 2


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chunked")
    server = start_server(tmp, REGISTRY_BODY_TIMEOUT=str(BODY_TIMEOUT))
    with serving(server, tmp, "--bind", server.host):
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """The same registry over TLS, where gunicorn decodes chunked bodies itself."""
    tmp = tmp_path_factory.mktemp("chunked-tls")
    settings = {"REGISTRY_TLS_DIR": str(tmp / "tls")}
    plain = start_server(tmp, REGISTRY_BODY_TIMEOUT=str(BODY_TIMEOUT), **settings)
    server = TLSServer(
        plain.port, plain.storage_root, plain.env, tmp / "tls/trust/ca.crt"
    )
    printed = server.flask("registry", "cert", HOSTNAME, "--port", str(server.port))
    with serving(
        server, tmp, "--bind", f"127.0.0.1:{server.port}", *gunicorn_flags(printed)
    ):
        yield server


@pytest.fixture(scope="module")
def authorization(plain_server):
    return f"Bearer {token(plain_server, f'repository:{NAME}:pull,push')}"


@pytest.fixture(scope="module")
def tls_authorization(tls_server):
    return f"Bearer {token(tls_server, f'repository:{NAME}:pull,push')}"


class Connection:
    """One client connection: raw requests out, responses parsed as they come."""

    def __init__(self, server, authorization):
        sock = socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT)
        if isinstance(server, TLSServer):
            context = server.trusting_context()
            sock = context.wrap_socket(sock, server_hostname=HOSTNAME)
        self.sock = sock
        self.incoming = sock.makefile("rb")
        self.authorization = authorization

    def __enter__(self):
        return self

    def __exit__(self, *_exception):
        self.incoming.close()
        self.sock.close()

    def head(self, method, path, *fields):
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"Authorization: {self.authorization}", *fields, "", ""]
        return "\r\n".join(lines).encode()

    def chunked(self, method, path, framed):
        """The bytes of a request with a chunked body already ``framed``."""
        fields = [
            "Content-Type: application/octet-stream",
            "Transfer-Encoding: chunked",
        ]
        return self.head(method, path, *fields) + framed

    def send(self, data):
        self.sock.sendall(data)

    def response(self):
        """Return the next (status, headers, body); None if the server closed."""
        status_line = self.incoming.readline()
        if not status_line:
            return None
        status = int(status_line.split()[1])
        headers = {}
        while (line := self.incoming.readline()) not in (b"\r\n", b""):
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = self.incoming.read(int(headers.get("content-length", 0)))
        return status, headers, body

    def closed(self):
        """True once the server has closed the connection, sending nothing more."""
        try:
            return self.incoming.read(1) == b""
        except ConnectionResetError:
            return True  # closed with bytes of ours still unread

    def exchange(self, data):
        self.send(data)
        return self.response()

    def start_upload(self, first=b""):
        """Open an upload holding ``first``; return its Location."""
        head = self.head("POST", f"/v2/{NAME}/blobs/uploads/", "Content-Length: 0")
        status, headers, _ = self.exchange(head)
        assert status == 202
        location = headers["location"]
        if first:
            patch = self.head("PATCH", location, f"Content-Length: {len(first)}")
            assert self.exchange(patch + first)[0] == 202
        return location

    def upload_range(self, location):
        status, headers, _ = self.exchange(self.head("GET", location))
        assert status == 204
        return headers["range"]

    def finish(self, location, data):
        """Close the upload as the blob ``data``; return the digest it was given."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        put = self.head("PUT", f"{location}?digest={digest}", "Content-Length: 0")
        status, headers, body = self.exchange(put)
        assert status == 201, body
        return headers["docker-content-digest"]

    def blob(self, digest):
        head = self.head("GET", f"/v2/{NAME}/blobs/{digest}")
        status, _, body = self.exchange(head)
        assert status == 200
        return body


def stored_range(size):
    return f"0-{max(size - 1, 0)}"


# Blobs come out whole.


@pytest.mark.parametrize("sizes,size", list(bodies.chunking_cases()))
def test_a_chunked_patch_stores_the_blob_whole(
    plain_server, authorization, sizes, size
):
    payload = PAYLOAD[:size]
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload()
        patch = connection.chunked("PATCH", location, chunked(payload, sizes))
        status, headers, _ = connection.exchange(patch)
        assert (status, headers["range"]) == (202, stored_range(size))

        digest = connection.finish(location, payload)
        assert connection.blob(digest) == payload


FRAMINGS = {
    "extensions": {"extension": b';name=value;q="a \\" b"'},
    "white space before extensions": {"extension": b" \t; a = b"},
    "trailers": {"trailers": b"X-Checksum: abc\r\nX-Other: 1\r\n"},
    "both": {"extension": b";a", "trailers": b"X-Checksum: abc\r\n"},
}


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS)
def test_extensions_and_trailers_are_taken(plain_server, authorization, framing):
    payload = PAYLOAD[: MIB + 100]
    framed = chunked(payload, (32 * 1024, 5), **framing)
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload()
        status, headers, _ = connection.exchange(
            connection.chunked("PATCH", location, framed)
        )
        assert (status, headers["range"]) == (202, stored_range(len(payload)))
        assert connection.blob(connection.finish(location, payload)) == payload


def test_a_closing_put_and_a_monolithic_post_take_chunked_bodies(
    plain_server, authorization
):
    first, last = PAYLOAD[:1000], PAYLOAD[1000:300_000]
    digest = "sha256:" + hashlib.sha256(first + last).hexdigest()
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload(first)
        put = connection.chunked(
            "PUT", f"{location}?digest={digest}", chunked(last, (32 * 1024,))
        )
        assert connection.exchange(put)[0] == 201

        whole = PAYLOAD[:70_000]
        whole_digest = "sha256:" + hashlib.sha256(whole).hexdigest()
        post = connection.chunked(
            "POST",
            f"/v2/{NAME}/blobs/uploads/?digest={whole_digest}",
            chunked(whole, (4096,)),
        )
        assert connection.exchange(post)[0] == 201
        assert connection.blob(whole_digest) == whole


# The connection stays right after the body.


def test_the_connection_serves_requests_after_chunked_patches(
    plain_server, authorization
):
    parts = [PAYLOAD[:MIB], PAYLOAD[MIB : 2 * MIB + 7]]
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload()
        stored = 0
        for part in parts:
            patch = connection.chunked("PATCH", location, chunked(part, (32 * 1024,)))
            status, headers, _ = connection.exchange(patch)
            stored += len(part)
            assert (status, headers["range"]) == (202, stored_range(stored))
            assert connection.upload_range(location) == stored_range(stored)
        assert connection.blob(connection.finish(location, b"".join(parts)))


@pytest.mark.parametrize(
    "trailers", [b"", b"X-Checksum: abc\r\n"], ids=["", "trailers"]
)
def test_a_request_pipelined_behind_a_chunked_body_is_answered(
    plain_server, authorization, trailers
):
    part = PAYLOAD[: 200_000 + 3]
    framed = chunked(part, (32 * 1024,), trailers=trailers)
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload()
        patch = connection.chunked("PATCH", location, framed)
        status_request = connection.head("GET", location)
        second_patch = connection.chunked("PATCH", location, chunked(part, (999,)))

        # One send: the next requests arrive in the same packets as the body.
        connection.send(patch + status_request + second_patch + status_request)

        answers = [connection.response() for _ in range(4)]
        assert [answer[0] for answer in answers] == [202, 204, 202, 204]
        assert [answer[1]["range"] for answer in answers] == [
            stored_range(len(part)),
            stored_range(len(part)),
            stored_range(2 * len(part)),
            stored_range(2 * len(part)),
        ]
        assert connection.finish(location, part + part)


def test_a_chunked_body_left_unread_is_drained_before_the_next_request(
    plain_server, authorization
):
    """An unknown upload is refused before its body is read: gunicorn reads it."""
    unknown = f"/v2/{NAME}/blobs/uploads/{'0' * 32}"
    with Connection(plain_server, authorization) as connection:
        patch = connection.chunked("PATCH", unknown, chunked(PAYLOAD[:30_000], (999,)))
        connection.send(patch + connection.head("GET", "/v2/"))

        assert connection.response()[0] == 404
        assert connection.response()[0] == 200


def received_bytes(server):
    """The bytes of PATCH bodies the registry counted, from /metrics."""
    with server.open("/metrics") as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "registry_http_received_bytes_total" and (
                sample.labels == {"route": "uploads.append_upload"}
            ):
                return sample.value
    return 0


def test_the_bytes_of_a_chunked_body_are_counted(plain_server, authorization):
    payload = PAYLOAD[: MIB + 12345]
    before = received_bytes(plain_server)
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload()
        patch = connection.chunked("PATCH", location, chunked(payload, (32 * 1024,)))
        assert connection.exchange(patch)[0] == 202

    # The count is taken when the server closes the response, after sending it.
    deadline = time.monotonic() + 10
    while (counted := received_bytes(plain_server) - before) < len(payload):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted == len(payload)


# Broken bodies: SIZE_INVALID as gunicorn's reader gives it, and nothing stored.


def answer_to_broken_patch(server, authorization, framed, cut_off):
    """PATCH an upload holding b"x" with ``framed``; check it is unchanged after.

    Returns the status and the error JSON of the answer. A malformed body has
    another request sent right behind it, which must go unanswered: the server
    closes the connection. A cut-off body ends with the client's EOF.
    """
    with Connection(server, authorization) as connection:
        location = connection.start_upload(b"x")
    with Connection(server, authorization) as connection:
        patch = connection.chunked("PATCH", location, framed)
        if cut_off:
            connection.send(patch)
            end_sending(connection.sock)
        else:
            connection.send(patch + connection.head("GET", location))
        status, headers, body = connection.response()
        assert headers["content-type"] == "application/json"
        assert connection.closed()  # the GET behind the body goes unanswered

    with Connection(server, authorization) as connection:
        assert connection.upload_range(location) == "0-0"
        resume = connection.head("PATCH", location, "Content-Length: 2")
        assert connection.exchange(resume + b"yz")[0] == 202
        assert connection.blob(connection.finish(location, b"xyz")) == b"xyz"
    return status, json.loads(body)


def end_sending(sock):
    """Tell the server nothing more comes: a FIN, or TLS's close_notify."""
    if not hasattr(sock, "unwrap"):
        sock.shutdown(socket.SHUT_WR)
        return
    sock.setblocking(False)
    # unwrap() sends close_notify, then would wait for the server's own.
    with contextlib.suppress(ssl.SSLWantReadError):
        sock.unwrap()
    sock.settimeout(CLIENT_TIMEOUT)


@pytest.mark.parametrize(
    "framed,cut_off",
    [pytest.param(framed, False, id=name) for name, framed in bodies.MALFORMED.items()]
    + [pytest.param(framed, True, id=name) for name, framed in bodies.CUT_OFF.items()],
)
def test_a_broken_body_is_answered_as_gunicorn_answers_it(
    plain_server, authorization, tls_server, tls_authorization, framed, cut_off
):
    answer = answer_to_broken_patch(plain_server, authorization, framed, cut_off)

    status, error = answer
    assert status == 400 and error["errors"][0]["code"] == "SIZE_INVALID"
    assert answer == answer_to_broken_patch(
        tls_server, tls_authorization, framed, cut_off
    )


def test_a_stalled_body_is_size_invalid(plain_server, authorization):
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload(b"x")
        patch = connection.chunked("PATCH", location, b"a\r\n01234")
        started = time.monotonic()
        status, _, body = connection.exchange(patch)
        waited = time.monotonic() - started
        assert connection.closed()

    reason = json.loads(body)["errors"][0]["detail"]["reason"]
    assert (status, reason) == (
        400,
        "the body stalled for longer than the server waits",
    )
    assert BODY_TIMEOUT <= waited < BODY_TIMEOUT + 5
    with Connection(plain_server, authorization) as connection:
        assert connection.upload_range(location) == "0-0"


def test_a_reset_leaves_the_upload_as_it_was(plain_server, authorization):
    with Connection(plain_server, authorization) as connection:
        location = connection.start_upload(b"x")
        framed = chunked(PAYLOAD[: 2 * MIB], (32 * 1024,))[: MIB + 7]
        connection.send(connection.chunked("PATCH", location, framed))
        # Closing with a zero linger time sends a reset instead of a FIN.
        linger = struct.pack("ii", 1, 0)
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)

    with Connection(plain_server, authorization) as connection:
        # Closing waits for the broken PATCH to give the upload's lock back.
        assert connection.blob(connection.finish(location, b"x")) == b"x"
