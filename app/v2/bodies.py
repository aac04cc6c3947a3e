"""Request bodies held to the length the client declared for them.

Behind gunicorn the WSGI input simply ends when a client closes the connection
early, so a body shorter than its ``Content-Length`` would otherwise be taken
as complete. Reading through ``request_body`` turns that into SIZE_INVALID,
raised from inside ``read`` so that storage rolls back what it wrote.
"""

from flask import request

from app.errors import SizeInvalid


class DeclaredLengthStream:
    """A file-like view of a body that must hold exactly ``length`` bytes."""

    def __init__(self, stream, length):
        self.stream = stream
        self.length = length
        self.remaining = length

    def read(self, size=-1):
        """Return up to ``size`` bytes; raise SizeInvalid if the body ends early."""
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        block = self.stream.read(size)
        if not block:
            received = self.length - self.remaining
            detail = {"expected": self.length, "received": received}
            raise SizeInvalid("request body ended before its Content-Length", detail)
        self.remaining -= len(block)
        return block


def request_body():
    """Return the request's body, checked against its Content-Length if it has one."""
    if request.content_length is None:
        return request.stream
    return DeclaredLengthStream(request.stream, request.content_length)
