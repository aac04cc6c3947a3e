"""The registry's errors: one class per OCI error code, rendered as the spec's JSON.

A view or the storage raises one of these; the handlers installed by
``register_error_handlers`` turn it, and any HTTP error Flask raises on its own
(unknown route, wrong method, bad range), into
``{"errors": [{"code", "message", "detail"}]}`` with the right status.
"""

import json
import logging

from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.wrappers import Response

from app.storage import errors as storage_errors

logger = logging.getLogger(__name__)


class RegistryError(Exception):
    """An error a client is told about, in the OCI error format."""

    code = "UNSUPPORTED"
    message = "the operation is unsupported"
    status = 400

    def __init__(self, message=None, detail=None, headers=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.detail = detail
        self.headers = headers or {}

    def to_dict(self):
        """Return the error as one entry of the OCI ``errors`` list."""
        return {"code": self.code, "message": self.message, "detail": self.detail}


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    message = "blob unknown to registry"
    status = 404


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"
    message = "blob upload invalid"
    status = 400


class UploadRangeInvalid(BlobUploadInvalid):
    message = "chunk does not start where the upload ends"
    status = 416


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"
    message = "blob upload unknown to registry"
    status = 404


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    message = "provided digest is not valid"
    status = 400


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"
    message = "manifest references a blob or manifest unknown to the repository"
    status = 400


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    message = "manifest invalid"
    status = 400


class TagInvalid(ManifestInvalid):
    message = "tag is not valid"


class ManifestTooLarge(ManifestInvalid):
    message = "manifest is larger than this registry accepts"
    status = 413


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    message = "manifest unknown to registry"
    status = 404


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    message = "invalid repository name"
    status = 400


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"
    message = "repository name not known to registry"
    status = 404


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"
    message = "provided length did not match content length"
    status = 400


class RangeNotSatisfiable(SizeInvalid):
    message = "requested range not satisfiable"
    status = 416


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"
    message = "authentication required"
    status = 401


class Denied(RegistryError):
    code = "DENIED"
    message = "requested access to the resource is denied"
    status = 403


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    message = "the operation is unsupported"
    status = 405


class EntryConflict(RegistryError):
    """What the store holds in a place stops a write there; nothing was changed.

    OCI has no code for a conflict in the store itself: UNSUPPORTED says the
    operation cannot be done as asked, and 409 that the request is not at fault.
    """

    code = "UNSUPPORTED"
    message = "an entry the registry did not write is in the way; it was left as it is"
    status = 409


class TooManyRequests(RegistryError):
    code = "TOOMANYREQUESTS"
    message = "too many requests"
    status = 429


# Flask's own HTTP errors, mapped onto the closest OCI code.
HTTP_STATUS_ERRORS = {
    404: NameUnknown,
    405: Unsupported,
    413: SizeInvalid,
    416: RangeNotSatisfiable,
}


# What storage reports, as the client is told it.
STORAGE_ERRORS = {
    storage_errors.BlobNotFound: BlobUnknown,
    storage_errors.ManifestNotFound: ManifestUnknown,
    storage_errors.RepositoryNotFound: NameUnknown,
    storage_errors.UploadNotFound: BlobUploadUnknown,
    storage_errors.UploadRangeMismatch: UploadRangeInvalid,
    storage_errors.DigestMismatch: DigestInvalid,
    storage_errors.SizeMismatch: SizeInvalid,
    storage_errors.OutsideRoot: NameInvalid,
    storage_errors.EntryInTheWay: EntryConflict,
}


def render_error(error):
    """Return the JSON response for a RegistryError."""
    body = json.dumps({"errors": [error.to_dict()]})
    response = Response(body, error.status, mimetype="application/json")
    response.headers.update(error.headers)
    return response


def render_storage_error(error):
    """Return the OCI error response for what storage reported missing."""
    error_class = STORAGE_ERRORS.get(type(error), RegistryError)
    return render_error(error_class(detail=error.detail))


def render_http_exception(exception):
    """Return an OCI error response for an HTTPException Flask raised itself."""
    error_class = HTTP_STATUS_ERRORS.get(exception.code)
    if isinstance(exception, ClientDisconnected):
        error = SizeInvalid("request body ended before its Content-Length")
    elif error_class is None:
        error = RegistryError(exception.description)
    else:
        error = error_class(detail={"reason": exception.description})
    error.status = exception.code or 500
    response = render_error(error)
    for header, value in exception.get_headers():
        if header in ("Allow", "Content-Range"):
            response.headers[header] = value
    return response


def render_unexpected(exception):
    """Log an unexpected failure and answer with an OCI error, never an HTML page."""
    logger.exception("unexpected error: %s", exception)
    error = RegistryError("internal server error")
    error.code = "UNKNOWN"
    error.status = 500
    return render_error(error)


def register_error_handlers(app):
    """Make every error the application raises answer in the OCI format."""
    app.register_error_handler(RegistryError, render_error)
    app.register_error_handler(storage_errors.StorageError, render_storage_error)
    app.register_error_handler(HTTPException, render_http_exception)
    app.register_error_handler(Exception, render_unexpected)
