"""Request bodies held to the length the client declared for them.

Behind gunicorn the WSGI input simply ends when a client closes the connection
early, so a body shorter than its ``Content-Length`` would otherwise be taken
as complete. Reading through ``request_body`` turns that into SIZE_INVALID,
raised from inside ``read`` so that storage rolls back what it wrote.

A body that cannot be read whole for any other reason (a chunked body cut off
or with a malformed chunk size or trailer section, a client that stalls past
the server's idle timeout, Werkzeug's ClientDisconnected under other servers)
is SIZE_INVALID too: the bytes received do not add up to the length the client
framed. The upload itself stays usable, so BLOB_UPLOAD_INVALID ("can no longer
proceed") would tell the client the wrong thing.
"""

from flask import request
from gunicorn.http import errors as gunicorn_errors
from werkzeug.exceptions import ClientDisconnected

from app.errors import RegistryError, SizeInvalid, render_error

# What gunicorn raises from a body the client cut off or framed wrongly: the
# chunks themselves, then the trailer section after the last chunk (too large,
# a bare LF, or a field that does not parse or may not stand in a trailer).
SERVER_BODY_ERRORS = (
    gunicorn_errors.NoMoreData,
    gunicorn_errors.InvalidChunkSize,
    gunicorn_errors.ChunkMissingTerminator,
    gunicorn_errors.InvalidChunkExtension,
    gunicorn_errors.LimitRequestHeaders,
    gunicorn_errors.InvalidHeader,
    gunicorn_errors.InvalidHeaderName,
    gunicorn_errors.ObsoleteFolding,
)
# ... and what else a body read raises when the client sent a broken one: a
# stall past the server's idle timeout, a reset, Werkzeug's short body.
BODY_READ_ERRORS = (
    *SERVER_BODY_ERRORS,
    ClientDisconnected,
    TimeoutError,
    ConnectionError,
)


def body_error(exception):
    """Return the SizeInvalid a failed body read is reported as."""
    if isinstance(exception, gunicorn_errors.NoMoreData):
        reason = "the body ended before its chunked encoding did"
    elif isinstance(exception, ClientDisconnected):
        reason = "the body ended before its Content-Length"
    elif isinstance(exception, TimeoutError):
        reason = "the body stalled for longer than the server waits"
    else:
        reason = getattr(exception, "description", None) or str(exception)
    detail = {"reason": reason or type(exception).__name__}
    return SizeInvalid("request body could not be read whole", detail)


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


class CheckedStream:
    """A body stream whose read errors come out as SizeInvalid."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size=-1):
        """Return up to ``size`` bytes; raise SizeInvalid if the body is broken."""
        try:
            return self.stream.read(size)
        except BODY_READ_ERRORS as error:
            raise body_error(error) from error


class TransferCodingUnsupported(RegistryError):
    code = "UNSUPPORTED"
    message = "the only transfer coding understood is chunked"
    status = 501


def refuse_unknown_transfer_codings():
    """Refuse a body sent in a transfer coding other than chunked (gzip, say).

    gunicorn takes ``gzip, chunked`` and hands over the bytes still gzipped;
    stored as they are, they would be another blob than the client meant.
    """
    encoding = request.headers.get("Transfer-Encoding")
    if encoding is None:
        return
    codings = {coding.strip(" \t").lower() for coding in encoding.split(",")}
    if codings != {"chunked"}:
        raise TransferCodingUnsupported(detail={"transfer-encoding": encoding})


def has_body():
    """True if the request declares a body: a Content-Length above 0, or chunks."""
    encoding = request.headers.get("Transfer-Encoding", "").lower()
    return bool(request.content_length) or "chunked" in encoding


def request_body():
    """Return the request's body, checked against its Content-Length if it has one."""
    stream = CheckedStream(request.stream)
    if request.content_length is None:
        return stream
    return DeclaredLengthStream(stream, request.content_length)


def render_body_error(exception):
    """Answer a body that broke while Flask or Werkzeug read it (a form, say)."""
    return render_error(body_error(exception))


def init_app(app):
    """Refuse unknown transfer codings; answer broken bodies as SIZE_INVALID."""
    app.before_request(refuse_unknown_transfer_codings)
    for error_class in SERVER_BODY_ERRORS:
        app.register_error_handler(error_class, render_body_error)
