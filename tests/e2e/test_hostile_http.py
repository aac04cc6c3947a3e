"""Hostile HTTP against the real gunicorn: the server stays up and answers in OCI JSON.

What is tested lives in gunicorn's worker, below the application: clients that
send half a request and stall, request heads gunicorn refuses, and bodies whose
chunked encoding breaks off. Each exchange is written byte by byte on a raw
socket, since a well-behaved HTTP client cannot send any of it.
"""

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import select
import socket
import ssl
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import Server, free_port, serving
from tests.e2e.test_tls import HOSTNAME, TLSServer, gunicorn_flags

NAME = "hostile/app"
# Held while the registry must keep answering: more than the shipped
# configuration has threads in all its workers, by a wide margin.
STALLED_CONNECTIONS = 40
IDLE_CONNECTIONS = 20
HALF_A_HEAD = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
# How long a test waits for an answer before calling the server stuck.
CLIENT_TIMEOUT = 30
# A head sent one line at a time, each line well inside the header timeout of
# the strict server, the whole far beyond it.
TRICKLED_LINES = 100
TRICKLE_PAUSE = 0.2


def start_server(tmp, **settings):
    """Return a Server and the flags to serve it with gunicorn's shipped config."""
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_ANONYMOUS_PUSH": "true",
        **settings,
    }
    return Server(free_port(), tmp / "storage", env, log=tmp / "gunicorn.log")


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory):
    """A registry that waits a whole minute for a request head."""
    tmp = tmp_path_factory.mktemp("patient")
    server = start_server(tmp, REGISTRY_HEADER_TIMEOUT="60")
    with serving(server, tmp, "--bind", server.host):
        yield server


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """A registry with short head and body timeouts, so tests can wait them out."""
    tmp = tmp_path_factory.mktemp("strict")
    server = start_server(tmp, REGISTRY_HEADER_TIMEOUT="1", REGISTRY_BODY_TIMEOUT="2")
    with serving(server, tmp, "--bind", server.host):
        yield server


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT)


def exchange(server, data, shut=False):
    """Send raw bytes, optionally close our side; return the parsed response."""
    with connect(server) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def read_response(sock):
    """Return (status, headers, body) of the response that arrives on ``sock``."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    with response:
        return response.status, dict(response.getheaders()), response.read()


def oci_code(headers, body):
    """Return the OCI error code of an error response; fail if it is not OCI JSON."""
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)["errors"][0]["code"]


def token(server, scope):
    query = urlencode({"scope": scope})
    with server.open(f"/token?{query}") as response:
        return json.load(response)["token"]


@pytest.fixture(scope="module")
def authorization(strict_server):
    return f"Bearer {token(strict_server, f'repository:{NAME}:pull,push')}"


def request_head(method, path, authorization, *fields):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"Authorization: {authorization}", *fields, "", ""]
    return "\r\n".join(lines).encode()


def still_open(sock):
    """True if the server has neither answered nor closed ``sock``.

    Under TLS 1.3 the server sends session tickets after the handshake, so a
    readable socket proves nothing: what counts is that no data comes out.
    """
    sock.setblocking(False)
    try:
        sock.recv(1)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    finally:
        sock.settimeout(CLIENT_TIMEOUT)
    return False


def readable(sock, seconds):
    """True once ``sock`` has data or an end to read, waiting at most ``seconds``."""
    return bool(select.select([sock], [], [], seconds)[0])


# Slow and idle clients.


KEPT_ALIVE_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new", "kept-alive"])
def test_stalled_and_idle_clients_do_not_block_others(patient_server, kept_alive):
    """Half a head on a new connection, or after a request on a kept-alive one."""
    with contextlib.ExitStack() as held:
        stalled = []
        for _ in range(STALLED_CONNECTIONS):
            sock = held.enter_context(connect(patient_server))
            if kept_alive:
                sock.sendall(KEPT_ALIVE_HEAD)
                assert read_response(sock)[0] == 200
            sock.sendall(HALF_A_HEAD)
            stalled.append(sock)
        for _ in range(IDLE_CONNECTIONS):
            held.enter_context(connect(patient_server))

        with patient_server.open("/healthz") as response:
            status = response.status

        assert status == 200
        assert all(still_open(sock) for sock in stalled)


def test_half_sent_head_times_out_with_408(strict_server):
    status, headers, body = exchange(strict_server, HALF_A_HEAD)

    assert (status, oci_code(headers, body)) == (408, "UNSUPPORTED")


def test_head_trickling_in_times_out_too(strict_server):
    with connect(strict_server) as sock:
        sock.sendall(HALF_A_HEAD)
        for number in range(TRICKLED_LINES):
            if readable(sock, TRICKLE_PAUSE):
                break  # answered
            sock.sendall(f"X-Slow-{number}: 1\r\n".encode())
        status, headers, body = read_response(sock)

    assert (status, oci_code(headers, body)) == (408, "UNSUPPORTED")


def test_half_a_head_after_a_kept_alive_request_times_out_with_408(strict_server):
    with connect(strict_server) as sock:
        sock.sendall(KEPT_ALIVE_HEAD)
        assert read_response(sock)[0] == 200
        sock.sendall(HALF_A_HEAD)
        status, headers, body = read_response(sock)

    assert (status, oci_code(headers, body)) == (408, "UNSUPPORTED")


@pytest.mark.parametrize("pause", [0, 0.2])
def test_heads_on_a_kept_alive_connection_are_answered_in_turn(strict_server, pause):
    """The next head whole at once, or in two pieces with a pause between."""
    with connect(strict_server) as sock:
        for _ in range(3):
            sock.sendall(KEPT_ALIVE_HEAD[:20])
            if pause:
                assert not readable(sock, pause)
            sock.sendall(KEPT_ALIVE_HEAD[20:])
            assert read_response(sock)[0] == 200


def test_stalled_body_fails_and_leaves_the_upload_as_it_was(
    strict_server, authorization
):
    location = start_upload(strict_server, authorization)
    head = request_head(
        "PATCH", location, authorization,
        "Content-Type: application/octet-stream", "Content-Length: 1000",
    )  # fmt: skip

    status, headers, body = exchange(strict_server, head + b"x" * 10)

    assert (status, oci_code(headers, body)) == (400, "SIZE_INVALID")
    assert upload_range(strict_server, location, authorization) == "0-0"


def test_server_answers_after_timeouts(strict_server):
    with strict_server.open("/healthz") as response:
        assert response.status == 200


# Requests gunicorn refuses before the application sees them.

MALFORMED = {
    "header too large": (b"X-Big: " + b"a" * 9000 + b"\r\n", 431, "UNSUPPORTED"),
    "too many headers": (
        b"".join(b"X-%d: 1\r\n" % number for number in range(101)),
        431,
        "UNSUPPORTED",
    ),
    "negative length": (b"Content-Length: -5\r\n", 400, "SIZE_INVALID"),
    "two lengths": (
        b"Content-Length: 1\r\nContent-Length: 2\r\n",
        400,
        "SIZE_INVALID",
    ),
    "length and chunked": (
        b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        400,
        "SIZE_INVALID",
    ),
}


@pytest.mark.parametrize("fields,status,code", MALFORMED.values(), ids=MALFORMED)
def test_malformed_head_is_answered_in_oci_json(strict_server, fields, status, code):
    data = b"PUT /v2/hostile/app/manifests/t HTTP/1.1\r\nHost: x\r\n" + fields
    answer = exchange(strict_server, data + b"\r\n")

    assert (answer[0], oci_code(*answer[1:])) == (status, code)


@pytest.mark.parametrize(
    "data,status",
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v2/ HTTP/1.1\nHost: x\n\n", 400),
        (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", 400),
    ],
    ids=["path too long", "bare LF", "folded header"],
)
def test_malformed_request_is_unsupported_in_oci_json(strict_server, data, status):
    answer = exchange(strict_server, data)

    assert (answer[0], oci_code(*answer[1:])) == (status, "UNSUPPORTED")


# Chunked bodies that break off or do not parse.

BROKEN_CHUNKS = {
    "cut off": b"a\r\n0123456789\r\n10\r\n01234",
    "bad chunk size": b"zz\r\n",
    "missing terminator": b"a\r\n0123456789XX",
    "bare LF in trailers": b"a\r\n0123456789\r\n0\r\nX-A: 1\nX-B: 2\n",
    "trailer section too large": b"a\r\n0123456789\r\n0\r\n" + b"X-A: 1\r\n" * 120_000,
    "forbidden trailer": b"a\r\n0123456789\r\n0\r\nContent-Length: 3\r\n\r\n",
}


def start_upload(server, authorization):
    """Start an upload holding one byte; return its Location."""
    head = request_head(
        "POST", f"/v2/{NAME}/blobs/uploads/", authorization, "Content-Length: 0"
    )
    status, headers, _ = exchange(server, head)
    assert status == 202
    location = headers["Location"]
    patch = request_head(
        "PATCH", location, authorization,
        "Content-Type: application/octet-stream", "Content-Length: 1",
    )  # fmt: skip
    assert exchange(server, patch + b"x")[0] == 202
    return location


def upload_range(server, location, authorization):
    head = request_head("GET", location, authorization)
    status, headers, _ = exchange(server, head)
    assert status == 204
    return headers["Range"]


def chunked(method, path, authorization, body):
    fields = ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"]
    return request_head(method, path, authorization, *fields) + body


@pytest.mark.parametrize("body", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS)
def test_broken_chunked_patch_is_size_invalid(strict_server, authorization, body):
    location = start_upload(strict_server, authorization)

    answer = exchange(
        strict_server, chunked("PATCH", location, authorization, body), shut=True
    )

    assert (answer[0], oci_code(*answer[1:])) == (400, "SIZE_INVALID")
    assert upload_range(strict_server, location, authorization) == "0-0"


@pytest.mark.parametrize(
    "coding", ["gzip, chunked", "deflate,chunked", "compress, chunked"]
)
def test_a_body_in_another_transfer_coding_is_refused(
    strict_server, authorization, coding
):
    location = start_upload(strict_server, authorization)
    body = gzip.compress(b"layer bytes")
    fields = ["Content-Type: application/octet-stream", f"Transfer-Encoding: {coding}"]
    head = request_head("PATCH", location, authorization, *fields)
    framed = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"

    answer = exchange(strict_server, head + framed, shut=True)

    assert (answer[0], oci_code(*answer[1:])) == (501, "UNSUPPORTED")
    assert upload_range(strict_server, location, authorization) == "0-0"


@pytest.mark.parametrize("body", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS)
@pytest.mark.parametrize("target", ["monolithic POST", "closing PUT", "manifest PUT"])
def test_broken_chunked_body_is_size_invalid(
    strict_server, authorization, target, body
):
    digest = "sha256:" + "0" * 64
    if target == "monolithic POST":
        method, path = "POST", f"/v2/{NAME}/blobs/uploads/?digest={digest}"
    elif target == "closing PUT":
        location = start_upload(strict_server, authorization)
        method, path = "PUT", f"{location}?digest={digest}"
    else:
        method, path = "PUT", f"/v2/{NAME}/manifests/broken"

    answer = exchange(
        strict_server, chunked(method, path, authorization, body), shut=True
    )

    assert (answer[0], oci_code(*answer[1:])) == (400, "SIZE_INVALID")


# The challenge's realm.


def test_odd_host_gets_the_realm_of_the_listening_address(strict_server):
    data = b"GET /v2/ HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"

    status, headers, _ = exchange(strict_server, data)

    realm = f'realm="http://127.0.0.1:{strict_server.port}/token"'
    assert status == 401
    assert realm in headers["WWW-Authenticate"]


def test_closing_put_takes_a_chunked_last_chunk(strict_server, authorization):
    location = start_upload(strict_server, authorization)
    digest = "sha256:" + hashlib.sha256(b"x0123456789").hexdigest()
    body = b"a\r\n0123456789\r\n0\r\n\r\n"

    put = chunked("PUT", f"{location}?digest={digest}", authorization, body)
    status, headers, _ = exchange(strict_server, put)

    assert status == 201
    assert headers["Docker-Content-Digest"] == digest


# The same under TLS: the handshake, too, waits in the poller.

# The start of a TLS record holding a ClientHello, and no more of it.
HALF_A_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


@pytest.fixture(scope="module")
def patient_tls_server(tmp_path_factory):
    """A registry over TLS that waits a whole minute for a request head."""
    tmp = tmp_path_factory.mktemp("patient-tls")
    settings = {"REGISTRY_HEADER_TIMEOUT": "60", "REGISTRY_TLS_DIR": str(tmp / "tls")}
    plain = start_server(tmp, **settings)
    server = TLSServer(
        plain.port, plain.storage_root, plain.env, tmp / "tls/trust/ca.crt"
    )
    printed = server.flask("registry", "cert", HOSTNAME, "--port", str(server.port))
    flags = gunicorn_flags(printed)
    with serving(server, tmp, "--bind", f"127.0.0.1:{server.port}", *flags):
        yield server


def test_stalled_tls_clients_do_not_block_others(patient_tls_server):
    context = patient_tls_server.trusting_context()
    with contextlib.ExitStack() as held:
        stalled = []
        for number in range(STALLED_CONNECTIONS):
            sock = held.enter_context(connect(patient_tls_server))
            if number % 2:
                sock.sendall(HALF_A_CLIENT_HELLO)
            else:
                sock = context.wrap_socket(sock, server_hostname=HOSTNAME)
                held.enter_context(sock).sendall(HALF_A_HEAD)
            stalled.append(sock)

        with patient_tls_server.open("/healthz") as response:
            status = response.status

        assert status == 200
        assert all(still_open(sock) for sock in stalled)


def client_hello():
    """Return the first bytes a TLS client sends: its ClientHello record."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new", "kept-alive"])
def test_a_tls_hello_on_the_plain_port_is_refused_at_once(patient_server, kept_alive):
    """docker tries TLS first on a registry it may reach either way: the plain
    port must refuse that now, not when the header timeout (here 60 s) is over."""
    with connect(patient_server) as sock:
        if kept_alive:
            sock.sendall(KEPT_ALIVE_HEAD)
            assert read_response(sock)[0] == 200
        sock.sendall(client_hello())
        assert readable(sock, CLIENT_TIMEOUT / 3)
        status, headers, body = read_response(sock)
    assert status == 400
    assert oci_code(headers, body) == "UNSUPPORTED"
