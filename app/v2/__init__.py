"""The /v2/ API, one blueprint per part of the spec."""

from flask import request

from app.v2 import base, blobs, bodies, manifests, referrers, tags, uploads
from app.v2.base import API_VERSION_HEADER

# Answers that never carry a body, so they name no media type either.
EMPTY_STATUSES = {201, 202, 204}


def init_app(app):
    """Register the /v2/ blueprints and the header every /v2/ answer carries."""
    for module in (base, blobs, uploads, manifests, referrers, tags):
        app.register_blueprint(module.blueprint, url_prefix="/v2")
    app.after_request(add_api_version)
    bodies.init_app(app)


def add_api_version(response):
    if request.path.startswith("/v2"):
        response.headers.setdefault(*API_VERSION_HEADER)
        if response.status_code in EMPTY_STATUSES and is_empty(response):
            del response.headers["Content-Type"]
    return response


def is_empty(response):
    """True for a response whose whole body is known now and is empty."""
    return response.is_sequence and not response.get_data()
