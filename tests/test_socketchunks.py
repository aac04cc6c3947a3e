"""Chunked upload bodies decoded from gunicorn's socket, held to gunicorn's rules.

Most tests decode the same bytes, arriving in the same pieces, twice: with
``ChunkedSocketBody``, and with gunicorn's own ``ChunkedReader`` behind the WSGI
input as the registry reads a body when it cannot go to the socket. Both must
give the same data or the same SIZE_INVALID, leave gunicorn's parser at the
same place for the next request, and count the same bytes.
"""

import itertools
import socket
import ssl
import threading
from dataclasses import dataclass

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from app.errors import SizeInvalid
from app.metrics import CountingInput
from app.storage.copying import BLOCK_SIZE
from app.v2.bodies import CheckedStream
from app.v2.socketbody import ChunkedSocketBody, chunked_socket_body, socket_body
from tests.chunked_bodies import (
    CUT_OFF,
    MALFORMED,
    MIB,
    PAYLOAD,
    chunked,
    chunking_cases,
)

PEER = ("127.0.0.1", 40000)
HEAD = (
    b"PATCH /v2/a/b/blobs/uploads/u HTTP/1.1\r\nHost: localhost\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
NEXT_REQUEST = b"GET /v2/next HTTP/1.1\r\nHost: localhost\r\n\r\n"
# How the bytes arrive: the most each receive hands over, in turn.
ALL_AT_ONCE = (64 * MIB,)
BYTE_BY_BYTE = (1,)
ODD_PIECES = (7, 3, 8192, 5, 1, 65536, 2)


class Trickle:
    """A client socket that hands its bytes over in pieces of the given sizes.

    What comes after the bytes: the end of the stream, or ``then`` raised (a
    TimeoutError for a client that stalls, a ConnectionResetError).
    """

    def __init__(self, data, pieces, then=None):
        self.data = memoryview(data)
        self.taken = 0
        self.pieces = itertools.cycle(pieces)
        self.then = then

    def next_size(self, wanted):
        if self.taken == len(self.data) and self.then is not None:
            raise self.then
        return min(wanted, next(self.pieces), len(self.data) - self.taken)

    def recv(self, size):
        size = self.next_size(size)
        self.taken += size
        return bytes(self.data[self.taken - size : self.taken])

    def recv_into(self, buffer, nbytes=0):
        view = memoryview(buffer)
        size = self.next_size(nbytes or len(view))
        view[:size] = self.data[self.taken : self.taken + size]
        self.taken += size
        return size

    def gettimeout(self):
        return None

    def settimeout(self, timeout):
        pass


@dataclass
class Outcome:
    """What decoding a request's body came to."""

    body: bytes
    error: dict | None  # the SIZE_INVALID detail
    failed: bool  # gunicorn's body marked failed: the connection closes
    counted: int  # bytes the metrics counted
    trailers: list
    next_path: str | None  # the request gunicorn reads next on the connection


def decode(data, pieces=ALL_AT_ONCE, fast=True, then=None, stop_after=None):
    """Decode the body of the request in ``data`` as the registry would.

    ``fast``: with ChunkedSocketBody and ``readinto`` into 1 MiB buffers, as
    storage copies an upload; else gunicorn's reader behind the WSGI input,
    read in 1 MiB blocks. ``stop_after``: the application stops reading after
    that many bytes, and gunicorn drains the rest.
    """
    source = Trickle(data, pieces, then)
    parser = RequestParser(Config(), source, PEER)
    request = next(parser)
    counter = CountingInput(request.body)
    if fast:
        stream = ChunkedSocketBody(source, request.body, counter, request.unreader)
    else:
        stream = CheckedStream(counter)
    received, error = bytearray(), None
    buffer = bytearray(BLOCK_SIZE)
    try:
        while stop_after is None or len(received) < stop_after:
            if fast:
                size = stream.readinto(buffer)
                block = buffer[:size]
            else:
                block = stream.read(BLOCK_SIZE)
            if not block:
                break
            received += block
    except SizeInvalid as raised:
        error = raised.detail
    failed = request.body.failed
    next_path = None
    if parser.finish_body():
        next_path = next(parser).path
    return Outcome(
        bytes(received), error, failed, counter.count, request.trailers, next_path
    )


def decode_both(data, pieces=ALL_AT_ONCE, **options):
    """Decode with ChunkedSocketBody; check gunicorn's reader comes to the same."""
    outcome = decode(data, pieces, fast=True, **options)
    assert outcome == decode(data, pieces, fast=False, **options)
    return outcome


# Bodies that decode.


@pytest.mark.parametrize("sizes,size", list(chunking_cases()))
def test_a_chunked_body_decodes_like_gunicorn(sizes, size):
    payload = PAYLOAD[:size]
    data = HEAD + chunked(payload, sizes) + NEXT_REQUEST

    outcome = decode_both(data)

    assert outcome.body == payload and outcome.counted == size
    assert outcome.error is None and not outcome.failed
    assert outcome.next_path == "/v2/next"


@pytest.mark.parametrize(
    "pieces", [BYTE_BY_BYTE, ODD_PIECES, (8190,), (8193,)], ids=str
)
def test_a_body_arriving_in_pieces_decodes_like_gunicorn(pieces):
    payload = PAYLOAD[:100_000]
    framed = chunked(payload, (1, 7, 8185, 4096, 1000, 50_000), b";a=b")
    data = HEAD + framed + NEXT_REQUEST

    outcome = decode_both(data, pieces)

    assert outcome.body == payload and outcome.next_path == "/v2/next"


EXTENSIONS = {
    "token": b";name=value",
    "no value": b";name",
    "quoted": b';q="a \\"quoted\\" ; value"',
    "white space": b" ; a = b ;\tc=d",
    "several": b';a;b=c;d="e"',
}


@pytest.mark.parametrize("extension", EXTENSIONS.values(), ids=EXTENSIONS)
def test_chunk_extensions_are_taken_as_gunicorn_takes_them(extension):
    payload = PAYLOAD[:70_000]
    data = HEAD + chunked(payload, (32 * 1024,), extension) + NEXT_REQUEST

    for pieces in (ALL_AT_ONCE, ODD_PIECES):
        outcome = decode_both(data, pieces)
        assert outcome.body == payload and outcome.next_path == "/v2/next"


def test_sizes_in_any_case_and_with_leading_zeros_are_taken():
    data = HEAD + b"00A\r\n" + PAYLOAD[:10] + b"\r\nb\r\n" + PAYLOAD[10:21]
    data += b"\r\n000\r\n\r\n" + NEXT_REQUEST

    outcome = decode_both(data)

    assert outcome.body == PAYLOAD[:21] and outcome.next_path == "/v2/next"


@pytest.mark.parametrize("pieces", [ALL_AT_ONCE, BYTE_BY_BYTE], ids=str)
def test_trailers_are_kept_and_what_follows_them_is_the_next_request(pieces):
    trailers = b"X-Checksum: abc\r\nX-Other: 1\r\n"
    data = HEAD + chunked(PAYLOAD[:5000], (999,), trailers=trailers) + NEXT_REQUEST

    outcome = decode_both(data, pieces)

    assert outcome.body == PAYLOAD[:5000]
    assert outcome.trailers == [("X-CHECKSUM", "abc"), ("X-OTHER", "1")]
    assert outcome.next_path == "/v2/next"


@pytest.mark.parametrize("digits", [15, 16, 17, 40])
def test_long_size_lines_of_hex_digits_after_a_chunk_are_taken(digits):
    size_line = b"%0*x" % (digits, 9)
    data = HEAD + b"3\r\n" + PAYLOAD[:3] + b"\r\n" + size_line + b"\r\n"
    data += PAYLOAD[3:12] + b"\r\n0\r\n\r\n" + NEXT_REQUEST

    for pieces in (ALL_AT_ONCE, BYTE_BY_BYTE, ODD_PIECES):
        outcome = decode_both(data, pieces)
        assert outcome.body == PAYLOAD[:12] and outcome.next_path == "/v2/next"


def test_a_line_just_under_the_limit_is_taken():
    extension = b";a=" + b"b" * 8000  # gunicorn's limit: 8190 bytes
    data = HEAD + chunked(PAYLOAD[:100], (60,), extension) + NEXT_REQUEST

    for pieces in (ALL_AT_ONCE, BYTE_BY_BYTE, ODD_PIECES):
        assert decode_both(data, pieces).body == PAYLOAD[:100]


def test_every_buffer_is_filled_whole_but_the_last():
    payload = PAYLOAD[:10_000]
    source = Trickle(HEAD + chunked(payload, (7, 1, 300)), ODD_PIECES)
    request = next(RequestParser(Config(), source, PEER))
    stream = ChunkedSocketBody(source, request.body, object(), request.unreader)

    buffer, sizes, received = bytearray(1000), [], bytearray()
    while size := stream.readinto(buffer):
        sizes.append(size)
        received += buffer[:size]

    assert received == payload and sizes == [1000] * 10


def test_read_returns_bytes_up_to_the_body_end():
    source = Trickle(HEAD + chunked(b"0123456789", (3,)), ALL_AT_ONCE)
    request = next(RequestParser(Config(), source, PEER))
    stream = ChunkedSocketBody(source, request.body, object(), request.unreader)

    assert stream.read(4) == b"0123" and stream.read(0) == b""
    assert stream.read() == b"456789" and stream.read() == b""


@pytest.mark.parametrize("stop_after", [0, 1, BLOCK_SIZE])
def test_a_body_left_unread_is_drained_through_the_decoder(stop_after):
    """gunicorn reads what the application left from where it stopped."""
    payload = PAYLOAD[: 2 * MIB]
    data = HEAD + chunked(payload, (32 * 1024, 7)) + NEXT_REQUEST

    outcome = decode_both(data, ODD_PIECES, stop_after=stop_after)

    assert outcome.body == payload[: len(outcome.body)]
    assert outcome.counted == len(outcome.body) >= stop_after
    assert outcome.next_path == "/v2/next" and not outcome.failed


# Bodies that do not: SIZE_INVALID, and gunicorn must close the connection.

BROKEN = {**MALFORMED, **CUT_OFF}


@pytest.mark.parametrize("pieces", [ALL_AT_ONCE, ODD_PIECES], ids=str)
@pytest.mark.parametrize("body", BROKEN.values(), ids=BROKEN)
def test_a_broken_body_is_size_invalid_like_gunicorn(body, pieces):
    outcome = decode_both(HEAD + body, pieces)

    assert outcome.error is not None and outcome.failed
    assert outcome.next_path is None  # the connection closes


@pytest.mark.parametrize("pieces", [ALL_AT_ONCE, ODD_PIECES], ids=str)
@pytest.mark.parametrize("body", BROKEN.values(), ids=BROKEN)
def test_broken_framing_after_good_chunks_is_size_invalid_like_gunicorn(body, pieces):
    """Framing between chunks is decoded from the received bytes when plain."""
    good = chunked(PAYLOAD[: 64 * 1024], (32 * 1024,))[: -len(b"0\r\n\r\n")]

    outcome = decode_both(HEAD + good + body, pieces)

    assert outcome.error is not None and outcome.failed
    assert outcome.next_path is None


def test_a_broken_body_is_refused_after_the_good_chunks_before_it():
    outcome = decode_both(HEAD + MALFORMED["after good chunks"], ODD_PIECES)

    assert outcome.error == {"reason": "Invalid chunk size: b'zz'"}
    assert outcome.failed and outcome.next_path is None


STALLED = "the body stalled for longer than the server waits"
RESET = "[Errno 104] Connection reset by peer"


@pytest.mark.parametrize(
    "then,reason",
    [
        (TimeoutError("timed out"), STALLED),
        (ConnectionResetError(104, "Connection reset by peer"), RESET),
    ],
    ids=["stall", "reset"],
)
def test_a_stall_or_reset_is_size_invalid_like_gunicorn(then, reason):
    data = HEAD + chunked(PAYLOAD[:100_000], (32 * 1024,))[:50_000]

    outcome = decode_both(data, ODD_PIECES, then=then)

    assert outcome.error == {"reason": reason}
    assert outcome.failed and outcome.next_path is None


# When the socket is used: gunicorn's untouched reader on a plain socket only.


def gunicorn_environ(server, client, data):
    """Send ``data`` from ``client``; return the environ gunicorn builds for it."""
    sender = threading.Thread(target=client.sendall, args=(data,))
    sender.start()
    cfg = Config()
    parser = RequestParser(cfg, server, PEER)
    request = next(parser)
    _, environ = wsgi.create(request, server, PEER, ("127.0.0.1", 5000), cfg)
    environ["wsgi.input"] = CountingInput(environ["wsgi.input"])
    return environ, parser, sender


def test_an_untouched_chunked_body_on_a_plain_socket_is_decoded(connection):
    payload = PAYLOAD[: MIB + 1]
    data = HEAD + chunked(payload, (32 * 1024,)) + NEXT_REQUEST
    environ, parser, sender = gunicorn_environ(*connection, data)

    stream = chunked_socket_body(environ)
    buffer, received = bytearray(BLOCK_SIZE), bytearray()
    while size := stream.readinto(buffer):
        received += buffer[:size]
    sender.join()

    assert received == payload and environ["wsgi.input"].count == len(payload)
    assert socket_body(environ, None) is None
    assert parser.finish_body() and next(parser).path == "/v2/next"


def test_a_body_already_partly_read_is_left_to_the_wsgi_input(connection):
    data = HEAD + chunked(b"0123456789", (4,))
    environ, _parser, sender = gunicorn_environ(*connection, data)
    environ["wsgi.input"].read(2)
    sender.join()

    assert chunked_socket_body(environ) is None


def test_a_body_read_up_to_a_chunk_end_is_left_to_the_wsgi_input(connection):
    """Nothing is left in gunicorn's buffers, but its decoder has started."""
    data = HEAD + chunked(PAYLOAD[:4096], (1024,))
    environ, _parser, sender = gunicorn_environ(*connection, data)
    assert environ["wsgi.input"].read(1024) == PAYLOAD[:1024]
    sender.join()

    assert chunked_socket_body(environ) is None


def test_a_body_taken_over_once_is_not_taken_over_again(connection):
    data = HEAD + chunked(b"0123456789", (4,))
    environ, _parser, sender = gunicorn_environ(*connection, data)
    sender.join()

    assert chunked_socket_body(environ) is not None
    assert chunked_socket_body(environ) is None


def test_a_tls_socket_or_no_socket_is_left_to_the_wsgi_input(connection):
    environ, _parser, sender = gunicorn_environ(*connection, HEAD + b"0\r\n\r\n")
    sender.join()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    wrapped = context.wrap_socket(
        socket.socket(), server_hostname="localhost", do_handshake_on_connect=False
    )
    try:
        environ["gunicorn.socket"] = wrapped
        assert chunked_socket_body(environ) is None
    finally:
        wrapped.close()
    del environ["gunicorn.socket"]
    assert chunked_socket_body(environ) is None


def test_a_body_with_a_length_is_not_taken_for_chunked(connection):
    head = HEAD.replace(b"Transfer-Encoding: chunked", b"Content-Length: 3")
    environ, _parser, sender = gunicorn_environ(*connection, head + b"abc")
    sender.join()

    assert chunked_socket_body(environ) is None
    assert socket_body(environ, 3) is not None
