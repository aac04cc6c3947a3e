"""Reading a request body of known length straight from the client's socket.

gunicorn's body readers pass every block through several in-memory buffers
before the application sees it. For a blob upload of known length over plain
HTTP, ``socket_body`` reads from the socket gunicorn exposes in the WSGI
environ with ``recv_into``, into the caller's buffer: one copy, no allocation.

It first takes what gunicorn's parser already read past the headers, and tells
gunicorn's reader how much of the body is left after each read, so that the
connection stays correct for the next request on it. Anything unexpected (TLS,
a body already partly read, another server, the Flask test client) gets None,
and the caller reads through the WSGI input as usual.
"""

import socket

from flask import request

from app.errors import SizeInvalid
from app.v2.bodies import BODY_READ_ERRORS, body_error, request_body


def upload_body():
    """Return the request's body for an upload: from the socket when possible."""
    fast = socket_body(request.environ, request.content_length)
    return fast if fast is not None else request_body()


def socket_body(environ, length):
    """Return a stream of the body read from the socket, or None if it cannot be."""
    connection = environ.get("gunicorn.socket")
    if length is None or type(connection) is not socket.socket:
        return None  # no socket, or an SSL socket: its bytes are not the body
    counter = environ.get("wsgi.input")
    body = getattr(counter, "stream", counter)
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    pending = getattr(body, "buf", None)
    untouched = (
        type(reader).__name__ == "LengthReader"
        and getattr(reader, "length", None) == length
        and pending is not None
        and pending.tell() == 0
        and hasattr(unreader, "take_buffered")
        and hasattr(unreader, "unread")
        and hasattr(body, "failed")
    )
    if not untouched:
        return None
    return SocketBody(connection, length, body, counter)


class SocketBody:
    """A body of ``length`` bytes read with ``recv_into`` from ``connection``."""

    def __init__(self, connection, length, body, counter):
        self.length = self.remaining = length
        self.connection = connection
        self.body = body
        self.counter = counter if hasattr(counter, "count") else None
        ahead = body.reader.unreader.take_buffered()
        if len(ahead) > length:  # the start of a pipelined request: give it back
            body.reader.unreader.unread(ahead[length:])
        self.ahead = memoryview(ahead[:length])

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
        try:
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
        except BODY_READ_ERRORS as error:  # a reset, or a stall past the timeout
            self.body.failed = True
            raise body_error(error) from error
        except BaseException:
            # Where the next request starts is unknown: gunicorn must close.
            self.body.failed = True
            raise
        self.count(filled)
        return filled

    def count(self, size):
        """Account for ``size`` bytes taken, here and in gunicorn's reader."""
        self.remaining -= size
        self.body.reader.length -= size
        if self.counter is not None:
            self.counter.count += size
