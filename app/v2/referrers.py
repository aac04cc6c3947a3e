"""``GET /v2/<name>/referrers/<digest>``: manifests whose subject is a digest."""

from flask import Blueprint

blueprint = Blueprint("referrers", __name__)
