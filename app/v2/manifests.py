"""``GET``/``HEAD /v2/<name>/manifests/<reference>``: manifests by tag or digest."""

from flask import Blueprint, Response

from app.auth import require_access
from app.context import get_storage
from app.errors import NameUnknown
from app.reference import Digest, parse_reference, validate_name

blueprint = Blueprint("manifests", __name__)


@blueprint.get("/<path:name>/manifests/<reference>")
def get_manifest(name, reference):
    """Serve a manifest's stored bytes with its stored media type.

    The Accept header never hides a manifest: what is stored is what a client
    gets, with its true Content-Type, and the client decides what to do with it.
    """
    name = validate_name(name)
    reference = parse_reference(reference)
    require_access("repository", name, "pull")

    storage = get_storage()
    if not storage.repository_exists(name):
        raise NameUnknown(detail={"name": name})
    if isinstance(reference, Digest):
        digest = reference
    else:
        digest = storage.resolve_tag(name, reference)
    manifest = storage.get_manifest(name, digest)

    response = Response(manifest.body)
    response.headers["Content-Type"] = manifest.media_type
    response.headers["Docker-Content-Digest"] = str(manifest.digest)
    response.set_etag(str(manifest.digest))
    return response
