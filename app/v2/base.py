"""``GET /v2/``: the API version check clients start with."""

from flask import Blueprint, jsonify

from app.auth import require_access

blueprint = Blueprint("base", __name__)

# The header every /v2/ answer carries.
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


@blueprint.get("/", strict_slashes=False)
def version_check():
    """Answer 200 to a client with a valid token, else the Bearer challenge."""
    require_access()

    return jsonify({})
