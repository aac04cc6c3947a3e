"""``GET``/``HEAD /v2/<name>/blobs/<digest>``: blob downloads, whole or by range."""

import re

from flask import Blueprint, Response, request
from werkzeug.http import parse_range_header
from werkzeug.wsgi import wrap_file

from app.auth import require_access
from app.context import get_storage, require_deletes_enabled
from app.errors import BlobUnknown, RangeNotSatisfiable
from app.events import record_event
from app.reference import parse_digest, validate_name

blueprint = Blueprint("blobs", __name__)

# A Range of one suffix of zero bytes: "bytes=-0", in any case, with white space.
EMPTY_SUFFIX = re.compile(r"\s*bytes\s*=\s*-\s*0+\s*", re.IGNORECASE)

BLOB_MEDIA_TYPE = "application/octet-stream"
BLOCK_SIZE = 1024 * 1024


@blueprint.get("/<path:name>/blobs/<digest>")
def get_blob(name, digest):
    """Serve a blob the repository holds, honouring a single byte range."""
    name = validate_name(name)
    digest = parse_digest(digest)
    require_access("repository", name, "pull")

    storage = get_storage()
    if not blob_available(storage, name, digest):
        raise BlobUnknown(detail={"name": name, "digest": str(digest)})
    size = storage.blob_size(digest)
    byte_range = requested_range(size)

    response = blob_response(storage.open_blob(digest), size, byte_range)
    response.headers["Docker-Content-Digest"] = str(digest)
    response.set_etag(str(digest))
    return response


@blueprint.delete("/<path:name>/blobs/<digest>")
def delete_blob(name, digest):
    """Stop the repository serving a blob; the bytes go at the next collection."""
    name = validate_name(name)
    digest = parse_digest(digest)
    require_access("repository", name, "delete")
    require_deletes_enabled()

    get_storage().unlink_blob(name, digest)

    record_event("blob deleted", repository=name, digest=digest)
    return Response(status=202)


def blob_available(storage, name, digest):
    """Tell whether the repository serves the blob.

    A pushing client asks with HEAD and skips the upload when the answer is yes,
    so HEAD touches the blob to keep it from a garbage collection running now.
    """
    if request.method == "HEAD":
        return storage.touch_blob(name, digest)
    return storage.repository_has_blob(name, digest)


def blob_response(blob, size, byte_range=None):
    """Return a response streaming ``blob``, or ``(start, stop)`` of it."""
    if byte_range is None:
        response = Response(wrap_file(request.environ, blob, BLOCK_SIZE))
        response.content_length = size
    else:
        start, stop = byte_range
        blob.seek(start)
        if stops_at_content_length(request.environ):
            body = wrap_file(request.environ, blob, BLOCK_SIZE)
        else:
            body = read_slice(blob, stop - start)
        response = Response(body, status=206)
        response.content_length = stop - start
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.direct_passthrough = True
    response.mimetype = BLOB_MEDIA_TYPE
    response.headers["Accept-Ranges"] = "bytes"
    return response


def requested_range(size):
    """Return ``(start, stop)`` of a satisfiable single Range, None for the whole.

    A Range header that does not parse, or asks for several ranges, is ignored
    as HTTP allows; one that asks only for bytes past the end, or for the last
    zero bytes (``bytes=-0``), is refused (416).
    """
    header = request.headers.get("Range")
    # The suffix "-0" asks for no bytes at all; werkzeug reads it as the whole
    # blob ("0-") or as no valid range, depending on its version.
    if header is not None and EMPTY_SUFFIX.fullmatch(header):
        raise unsatisfiable(size)
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    [(start, stop)] = parsed.ranges
    if start < 0 and stop is None and size:
        # The last bytes; a suffix longer than the blob is the whole blob.
        return max(size + start, 0), size
    bounds = parsed.range_for_length(size)
    if bounds is None:
        raise unsatisfiable(size)
    return bounds


def unsatisfiable(size):
    """The 416 for a Range no byte of a blob of ``size`` bytes satisfies."""
    return RangeNotSatisfiable(
        detail={"size": size}, headers={"Content-Range": f"bytes */{size}"}
    )


def stops_at_content_length(environ):
    """Tell whether the server sends a file from its position for Content-Length.

    gunicorn does, with sendfile(2) from the file's offset; a file wrapper in
    general sends to the end of the file, so elsewhere a range is sliced here.
    """
    return environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")


def read_slice(blob, length):
    """Yield ``length`` bytes of an open file from its position, then close it."""
    with blob:
        while length > 0:
            block = blob.read(min(BLOCK_SIZE, length))
            if not block:
                break
            length -= len(block)
            yield block
