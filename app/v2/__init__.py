"""The /v2/ API, one blueprint per part of the spec."""

from flask import request

from app.v2 import base, blobs, manifests, referrers, tags, uploads

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


def init_app(app):
    """Register the /v2/ blueprints and the header every /v2/ answer carries."""
    for module in (base, blobs, uploads, manifests, referrers, tags):
        app.register_blueprint(module.blueprint, url_prefix="/v2")
    app.after_request(add_api_version)


def add_api_version(response):
    if request.path.startswith("/v2"):
        response.headers.setdefault(*API_VERSION_HEADER)
    return response
