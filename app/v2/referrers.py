"""``GET /v2/<name>/referrers/<digest>``: manifests whose subject is a digest."""

import json

from flask import Blueprint, Response, request

from app.auth import require_access
from app.context import get_storage
from app.reference import parse_digest, validate_name
from app.v2.manifests import OCI_INDEX, SCHEMA_VERSION

blueprint = Blueprint("referrers", __name__)

ARTIFACT_TYPE_FILTER = "artifactType"


@blueprint.get("/<path:name>/referrers/<digest>")
def list_referrers(name, digest):
    """List the referrers of a digest as an image index, filtered by artifactType.

    The answer is always an index, empty for a repository or subject without
    referrers: the spec forbids a 404 from this endpoint.
    """
    name = validate_name(name)
    subject = parse_digest(digest)
    artifact_type = request.args.get(ARTIFACT_TYPE_FILTER)
    require_access("repository", name, "pull")

    descriptors = get_storage().list_referrers(name, subject)
    if artifact_type:
        descriptors = [
            descriptor
            for descriptor in descriptors
            if descriptor.get("artifactType") == artifact_type
        ]

    response = referrers_index(descriptors)
    if artifact_type:
        response.headers["OCI-Filters-Applied"] = ARTIFACT_TYPE_FILTER
    return response


def referrers_index(descriptors):
    """Return an image index response listing ``descriptors``."""
    index = {
        "schemaVersion": SCHEMA_VERSION,
        "mediaType": OCI_INDEX,
        "manifests": descriptors,
    }
    return Response(json.dumps(index), mimetype=OCI_INDEX)
