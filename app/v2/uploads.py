"""``/v2/<name>/blobs/uploads/``: blob uploads, monolithic, chunked or streamed.

An upload is opened with POST, fed with PATCH (with ``Content-Range`` for
chunks, or one streamed body as docker sends it), and closed with
``PUT ?digest=``. POST with ``?digest=`` uploads a whole blob at once, and
``?mount=<digest>&from=<repository>`` links a blob another repository holds.
"""

import re

from flask import Blueprint, Response, request

from app.auth import automatic_mount_allowed, require_access
from app.auth.tokens import allows
from app.context import get_storage
from app.errors import BlobUploadInvalid, DigestInvalid, UploadRangeInvalid
from app.events import record_event
from app.reference import parse_digest, validate_name
from app.storage.errors import BlobNotFound
from app.v2.base import NUMBER_CAP, read_number
from app.v2.bodies import has_body
from app.v2.socketbody import upload_body

blueprint = Blueprint("uploads", __name__)

CONTENT_RANGE_PATTERN = re.compile(r"(?:bytes[= ])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


@blueprint.post("/<path:name>/blobs/uploads/", strict_slashes=False)
def start_upload(name):
    """Open an upload, or take a whole blob, or mount one from elsewhere."""
    name = validate_name(name)
    grant = require_access("repository", name, "push")
    mount = request.args.get("mount")
    digest = request.args.get("digest")

    if mount is not None:
        mounted = mount_blob(name, parse_digest(mount), grant)
        if mounted is not None:
            return blob_created(name, mounted)
    if digest is not None:
        digest = parse_digest(digest)
        storage = get_storage()
        storage.check_blob_writable(name, digest)
        digest = storage.write_blob(upload_body(), digest)
        return commit_created(name, digest)
    upload_id = get_storage().create_upload(name)

    return upload_progress(name, upload_id, 0, status=202)


@blueprint.patch("/<path:name>/blobs/uploads/<upload_id>")
def append_upload(name, upload_id):
    """Append a chunk (``Content-Range``) or a streamed body to an upload."""
    name = validate_name(name)
    require_access("repository", name, "push")
    start = chunk_start()

    size = get_storage().append_upload(name, upload_id, upload_body(), start)

    return upload_progress(name, upload_id, size, status=202)


@blueprint.get("/<path:name>/blobs/uploads/<upload_id>")
def get_upload(name, upload_id):
    """Tell how many bytes an upload holds."""
    name = validate_name(name)
    require_access("repository", name, "push")

    size = get_storage().upload_size(name, upload_id)

    return upload_progress(name, upload_id, size, status=204)


@blueprint.put("/<path:name>/blobs/uploads/<upload_id>")
def finish_upload(name, upload_id):
    """Close an upload, with an optional last chunk, if its digest matches."""
    name = validate_name(name)
    require_access("repository", name, "push")
    if "digest" not in request.args:
        raise DigestInvalid("the digest query parameter is required")
    digest = parse_digest(request.args["digest"])
    start = chunk_start()

    storage = get_storage()
    storage.check_blob_writable(name, digest)
    if start is not None or has_body():
        storage.append_upload(name, upload_id, upload_body(), start)
    storage.commit_upload(name, upload_id, digest)

    return commit_created(name, digest)


@blueprint.delete("/<path:name>/blobs/uploads/<upload_id>")
def cancel_upload(name, upload_id):
    """Abandon an upload and its bytes."""
    name = validate_name(name)
    require_access("repository", name, "push")

    get_storage().cancel_upload(name, upload_id)

    return Response(status=204)


def mount_blob(name, digest, grant):
    """Link a blob from another repository; return its digest, or None if not."""
    source = request.args.get("from")
    storage = get_storage()
    if source is None:
        if not automatic_mount_allowed():
            return None
        found = storage.has_blob(digest)
    else:
        source = validate_name(source)
        readable = allows(grant, "repository", source, "pull")
        found = readable and storage.repository_has_blob(source, digest)
    if not found:
        return None
    try:
        storage.link_blob(name, digest)
    except BlobNotFound:
        return None  # collected since it was found: upload it instead
    record_event("blob mounted", repository=name, digest=digest, source=source)
    return digest


def chunk_start():
    """Return where a ``Content-Range`` chunk starts, or None without one."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = CONTENT_RANGE_PATTERN.fullmatch(header.strip())
    if match is None:
        raise UploadRangeInvalid("Content-Range does not parse", {"range": header})
    start, end = read_number(match[1]), read_number(match[2])
    if min(start, end) >= NUMBER_CAP:
        # Both past any upload: the chunk cannot start where this one ends.
        raise UploadRangeInvalid(detail={"range": header})
    length = request.content_length
    if end < start or (length is not None and length != end - start + 1):
        raise BlobUploadInvalid(
            "Content-Range and Content-Length disagree",
            {"range": header, "length": length},
        )
    return start


def commit_created(name, digest):
    """Link a committed blob into the repository and answer 201."""
    storage = get_storage()
    storage.link_blob(name, digest)
    size = storage.blob_size(digest)
    record_event("blob committed", repository=name, digest=digest, size=size)
    return blob_created(name, digest)


def blob_created(name, digest):
    response = Response(status=201)
    response.headers["Location"] = f"/v2/{name}/blobs/{digest}"
    response.headers["Docker-Content-Digest"] = str(digest)
    response.content_length = 0
    return response


def upload_progress(name, upload_id, size, status):
    """Answer with where the upload lives and the range of bytes it holds."""
    response = Response(status=status)
    response.headers["Location"] = f"/v2/{name}/blobs/uploads/{upload_id}"
    response.headers["Docker-Upload-UUID"] = upload_id
    response.headers["Range"] = f"0-{max(size - 1, 0)}"
    response.content_length = 0
    return response
