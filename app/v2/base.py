"""``GET /v2/``: the API version check clients start with."""

from flask import Blueprint, jsonify

from app.auth import require_access

blueprint = Blueprint("base", __name__)

# The header every /v2/ answer carries.
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
# Past any count or byte position the API meets: more bytes than any disk
# holds, more entries than any listing has.
NUMBER_CAP = 10**18


def read_number(digits):
    """Return the whole number that decimal ``digits`` spell, at most NUMBER_CAP.

    A client may send thousands of digits, which Python refuses to convert;
    any such number is past the cap, and is read as the cap.
    """
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(NUMBER_CAP)):
        return NUMBER_CAP
    return min(int(digits), NUMBER_CAP)


@blueprint.get("/", strict_slashes=False)
def version_check():
    """Answer 200 to a client with a valid token, else the Bearer challenge."""
    require_access()

    return jsonify({})
