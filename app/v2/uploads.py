"""``/v2/<name>/blobs/uploads/``: blob uploads, monolithic, chunked or streamed."""

from flask import Blueprint

blueprint = Blueprint("uploads", __name__)
