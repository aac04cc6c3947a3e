"""Reading an upload's body straight from the client's socket.

gunicorn's body readers pass every block through several in-memory buffers
before the application sees it. For a blob upload over plain HTTP the body is
read instead from the socket gunicorn exposes in the WSGI environ, with
``recv_into`` into the caller's buffer: one copy, no allocation.

- ``SocketBody`` reads a body of known length (``Content-Length``). It first
  takes what gunicorn's parser already read past the headers, and tells
  gunicorn's reader how much of the body is left after each read.
- ``ChunkedSocketBody`` reads a ``Transfer-Encoding: chunked`` body, as docker
  streams a layer. It receives across chunk boundaries and takes the framing
  out in place (one move of the data within the caller's buffer), decoding it
  as strictly as gunicorn's ``ChunkedReader`` and with its errors, and takes
  that reader's place: should gunicorn drain the rest of the body after the
  response, it reads through this one.

Either way the connection stays correct for the next request on it, and a body
that cannot be read whole is SIZE_INVALID and closes the connection, as when
gunicorn reads it. Anything unexpected (TLS, a body already partly read,
another server, the Flask test client) gets None, and the caller reads through
the WSGI input as usual.
"""

import contextlib
import inspect
import re
import socket

from flask import request
from gunicorn.http.body import CHUNK_EXT_RE, ChunkedReader
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    InvalidChunkExtension,
    InvalidChunkSize,
    NoMoreData,
)

from app.errors import SizeInvalid
from app.v2.bodies import BODY_READ_ERRORS, body_error, request_body

HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
# The framing between two chunks in the common case: the CRLF ending one
# chunk's data, then a chunk-size line of hex digits alone.
PLAIN_FRAMING = re.compile(rb"\r\n([0-9A-Fa-f]{1,16})\r\n")
# Chunk-size lines, the CRLF after each chunk's data and the start of the
# trailer section are decoded in a staging buffer at least this large (and
# large enough for the longest chunk-size line gunicorn allows). Whatever data
# is staged with them is copied out of it; the rest of the data stays in the
# caller's buffer, where it was received.
STAGING_SIZE = 8 * 1024
# Bytes of framing staged at a time from what was received with chunk data.
FRAMING_STEP = 64
# What gunicorn gets at most from one step when it drains the body itself.
DRAIN_STEP = 64 * 1024


def upload_body():
    """Return the request's body for an upload: from the socket when possible."""
    environ = request.environ
    fast = socket_body(environ, request.content_length)
    if fast is None:
        fast = chunked_socket_body(environ)
    return fast if fast is not None else request_body()


def gunicorn_body(environ):
    """Return ``(socket, counter, body)`` of a request gunicorn serves in plain HTTP.

    ``body`` is gunicorn's ``Body``, ``counter`` the WSGI input wrapping it (the
    metrics' byte counter). None where the request is not read that way.
    """
    connection = environ.get("gunicorn.socket")
    if type(connection) is not socket.socket:
        return None  # no socket, or an SSL socket: its bytes are not the body
    counter = environ.get("wsgi.input")
    body = getattr(counter, "stream", counter)
    pending = getattr(body, "buf", None)
    if not hasattr(body, "failed") or pending is None or pending.tell():
        return None
    return connection, counter, body


def socket_body(environ, length):
    """Return a stream of the body read from the socket, or None if it cannot be."""
    found = gunicorn_body(environ) if length is not None else None
    if found is None:
        return None
    connection, counter, body = found
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    untouched = (
        type(reader).__name__ == "LengthReader"
        and getattr(reader, "length", None) == length
        and hasattr(unreader, "take_buffered")
        and hasattr(unreader, "unread")
    )
    if not untouched:
        return None
    return SocketBody(connection, length, body, counter)


def chunked_socket_body(environ):
    """Return a stream of a chunked body decoded from the socket, or None."""
    found = gunicorn_body(environ)
    if found is None:
        return None
    connection, counter, body = found
    reader = getattr(body, "reader", None)
    unreader = getattr(getattr(reader, "req", None), "unreader", None)
    untouched = (
        type(reader) is ChunkedReader
        and inspect.isgenerator(reader.parser)
        and inspect.getgeneratorstate(reader.parser) == inspect.GEN_CREATED
        and reader.buf.tell() == 0
        and hasattr(unreader, "take_buffered")
        and hasattr(unreader, "unread")
    )
    if not untouched:
        return None
    return ChunkedSocketBody(connection, body, counter, unreader)


@contextlib.contextmanager
def closing_on_failure(body):
    """Mark gunicorn's ``body`` failed if reading it raises; report SIZE_INVALID.

    Where the next request starts is then unknown: gunicorn closes the
    connection instead of reading another request from it.
    """
    try:
        yield
    except BODY_READ_ERRORS as error:  # broken framing, a reset, a stall
        body.failed = True
        raise body_error(error) from error
    except BaseException:
        body.failed = True
        raise


class SocketBody:
    """A body of ``length`` bytes read with ``recv_into`` from ``connection``."""

    def __init__(self, connection, length, body, counter):
        self.length = self.remaining = length
        self.connection = connection
        self.body = body
        self.counter = counter if hasattr(counter, "count") else None
        # What gunicorn's parser read past the head, taken on the first read:
        # a request refused before its body is read leaves it to gunicorn,
        # which then drains the body whole and finds the next request.
        self.ahead = None

    def take_ahead(self):
        """Take the body's start from gunicorn's buffer, leaving what follows it."""
        unreader = self.body.reader.unreader
        ahead = unreader.take_buffered()
        if len(ahead) > self.remaining:  # a pipelined request: give it back
            unreader.unread(ahead[self.remaining :])
        self.ahead = memoryview(ahead[: self.remaining])

    def read(self, size=-1):
        """Return up to ``size`` bytes; raise SizeInvalid if the body ends early."""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        buffer = bytearray(size)
        return bytes(memoryview(buffer)[: self.readinto(buffer)])

    def readinto(self, buffer):
        """Fill ``buffer`` from the body; return how many bytes it got (0: done)."""
        view = memoryview(buffer).cast("B")[: self.remaining]
        filled = 0
        if self.ahead is None:
            self.take_ahead()
        with closing_on_failure(self.body):
            if self.ahead:
                filled = min(len(view), len(self.ahead))
                view[:filled] = self.ahead[:filled]
                self.ahead = self.ahead[filled:]
            while filled < len(view):
                received = self.connection.recv_into(view[filled:])
                if not received:
                    self.count(filled)
                    received = self.length - self.remaining
                    detail = {"expected": self.length, "received": received}
                    message = "request body ended before its Content-Length"
                    raise SizeInvalid(message, detail)
                filled += received
        self.count(filled)
        return filled

    def count(self, size):
        """Account for ``size`` bytes taken, here and in gunicorn's reader."""
        self.remaining -= size
        self.body.reader.length -= size
        if self.counter is not None:
            self.counter.count += size


class ChunkedSocketBody:
    """A ``Transfer-Encoding: chunked`` body decoded from ``connection``.

    The socket is read straight into the caller's buffer, as much as it takes
    at a time, chunk boundaries or not. The framing found between the chunks'
    data is matched where it was received when it is plain (CRLF, hex digits,
    CRLF); any other is staged a few bytes at a time into a small buffer and
    decoded there. Each chunk's data is moved down in place to follow the one
    before. The chunk-size lines are held to gunicorn's rules: hex
    digits, then optional extensions that match its grammar, ended by CRLF and
    no longer than its limit; each chunk's data must be followed by CRLF. The
    trailer section after the last chunk is left to gunicorn's own reader, which
    checks it, keeps its fields and gives back what follows it on the socket
    (the next request, if the client sent it already). Errors are gunicorn's
    own, so that a broken body is reported as when gunicorn decodes it.

    The object stands in for the generator inside gunicorn's ``ChunkedReader``:
    whatever of the body the application leaves unread, gunicorn reads through
    it, from where the application stopped.
    """

    def __init__(self, connection, body, counter, unreader):
        self.connection = connection
        self.body = body
        self.counter = counter if hasattr(counter, "count") else None
        self.reader = reader = body.reader
        self.unreader = unreader
        self.limit = reader.limit_chunk_size_line
        ahead = unreader.take_buffered()
        self.staging = bytearray(max(STAGING_SIZE, self.limit + 2, len(ahead)))
        self.staging[: len(ahead)] = ahead
        self.staged = memoryview(self.staging)
        self.start, self.end = 0, len(ahead)  # the staged bytes not yet taken
        self.chunk_left = 0  # data still to come in the current chunk
        self.first = True  # no chunk yet, so no CRLF to expect
        # Bytes received into the caller's view past the data it was filled
        # with, still to decode, and where in that view they start.
        self.pending = memoryview(b"")
        self.offset = 0
        self.done = False
        reader.parser = self

    def read(self, size=-1):
        """Return up to ``size`` bytes (all that is left if negative or None)."""
        if size is None or size < 0:
            blocks = []
            while block := self.read(DRAIN_STEP):
                blocks.append(block)
            return b"".join(blocks)
        buffer = bytearray(size)
        return bytes(memoryview(buffer)[: self.readinto(buffer)])

    def readinto(self, buffer):
        """Fill ``buffer`` from the body; return how many bytes it got (0: done).

        The buffer is filled whole unless the body ends first. A body that
        cannot be read whole raises SizeInvalid.
        """
        with closing_on_failure(self.body):
            filled = self.fill(memoryview(buffer).cast("B"))
        if self.counter is not None:
            self.counter.count += filled
        return filled

    def __iter__(self):
        return self

    def __next__(self):
        """Return the next piece of the body to gunicorn's reader, in its errors."""
        block = bytearray(DRAIN_STEP)
        size = self.fill(memoryview(block))
        if not size:
            raise StopIteration
        return bytes(block[:size])

    def fill(self, view):
        """Fill ``view`` with chunk data; raise gunicorn's errors or the socket's.

        The socket is asked for as much as the view still takes, across chunk
        boundaries; the framing that came with the data is then taken out in
        place, each chunk's data moved down once to follow the one before.
        """
        filled, size = 0, len(view)
        while filled < size:
            if not self.chunk_left:
                if self.done:
                    break
                if not self.first and not self.pending and self.start == self.end:
                    # Framing and the data after it come in one receive, here.
                    # (At the end of the stream, the framing's own reading
                    # finds it again and says what was missing.)
                    self.receive_into(view, filled, size)
                if not self.next_chunk():
                    break
            wanted = min(size - filled, self.chunk_left)
            staged = self.end - self.start
            if staged:
                taken = min(wanted, staged)
                view[filled : filled + taken] = self.staged[
                    self.start : self.start + taken
                ]
                self.start += taken
            elif self.pending:
                taken = min(wanted, len(self.pending))
                if self.pending.obj is not view.obj or filled != self.offset:
                    view[filled : filled + taken] = self.pending[:taken]
                self.pending = self.pending[taken:]
                self.offset += taken
            else:
                if not self.receive_into(view, filled, size):
                    raise NoMoreData()
                continue
            filled += taken
            self.chunk_left -= taken
        return filled

    def receive_into(self, view, filled, size):
        """Receive past the first ``filled`` bytes of ``view``; return the count."""
        received = self.connection.recv_into(view[filled:], size - filled)
        self.pending = view[filled : filled + received]
        self.offset = filled
        return received

    def next_chunk(self):
        """Read up to the next chunk's data; return False at the body's end."""
        if self.start == self.end and self.plain_framing():
            return True
        if not self.first:
            while self.end - self.start < 2 and self.receive():
                pass
            terminator = bytes(self.staged[self.start : self.end][:2])
            if terminator != b"\r\n":
                raise ChunkMissingTerminator(terminator)
            self.start += 2
        self.first = False
        size = chunk_size(self.chunk_size_line())
        if size:
            self.chunk_left = size
            return True
        self.done = True
        rest = bytes(self.staged[self.start : self.end]) + bytes(self.pending)
        self.start = self.end = 0
        self.pending = memoryview(b"")
        # gunicorn reads and checks the trailers, and keeps what follows them.
        self.reader.parse_trailers(self.unreader, rest)
        return False

    def plain_framing(self):
        """Take the framing before the next chunk from the bytes received, if plain.

        Return True if it was the CRLF after a chunk's data and a chunk-size
        line of hex digits alone, for a chunk that is not the last. Anything
        else (an extension, the last chunk, framing not all received yet) is
        left in place for the staging buffer, which decodes every case.
        """
        if self.first:
            return False
        found = PLAIN_FRAMING.match(self.pending)
        if found is None or len(found[1]) >= self.limit:
            return False
        size = int(found[1], 16)
        if not size:
            return False
        self.pending = self.pending[found.end() :]
        self.offset += found.end()
        self.chunk_left = size
        return True

    def chunk_size_line(self):
        """Take the next chunk-size line from the staged bytes, without its CRLF.

        As in gunicorn, the limit is on what has arrived of a line before its
        CRLF: once more than that is staged without one, the line is refused.
        """
        scanned = 0  # staged bytes known to start no CRLF
        while (end := self.staging.find(b"\r\n", self.start + scanned, self.end)) < 0:
            if self.end - self.start > self.limit:
                message = b"line over %d bytes with no terminator" % self.limit
                raise InvalidChunkSize(message)
            scanned = max(0, self.end - self.start - 1)
            if not self.receive():
                raise NoMoreData()
        line = bytes(self.staged[self.start : end])
        self.start = end + 2
        return line

    def receive(self):
        """Stage more framing: from bytes already received, else from the socket.

        Return how many bytes came. What was received into the caller's view
        comes first, a few bytes at a time: framing is short, and what follows
        it is data, better moved once inside the view than through here.
        """
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.staging):
            staged = bytes(self.staged[self.start : self.end])
            self.staged[: len(staged)] = staged
            self.start, self.end = 0, len(staged)
        if self.pending:
            received = min(
                len(self.pending), len(self.staging) - self.end, FRAMING_STEP
            )
            self.staged[self.end : self.end + received] = self.pending[:received]
            self.pending = self.pending[received:]
            self.offset += received
        else:
            received = self.connection.recv_into(self.staged[self.end :])
        self.end += received
        return received


def chunk_size(line):
    """Return the size a chunk-size line gives; raise as gunicorn does if it is bad.

    The checks and their order are those of gunicorn's
    ``ChunkedReader.parse_chunk_size``, so that each bad line gets the error
    gunicorn gives it.
    """
    if HEX_DIGITS.fullmatch(line):
        return int(line, 16)
    size, *extension = line.split(b";", 1)
    if extension:
        if b"\r" in extension[0]:
            raise InvalidChunkExtension("bare CR not allowed")
        size = size.rstrip(b" \t")
    if not HEX_DIGITS.fullmatch(size):
        raise InvalidChunkSize(size)
    if extension and not CHUNK_EXT_RE.fullmatch(b";" + extension[0]):
        raise InvalidChunkExtension("invalid chunk extension")
    return int(size, 16)
