"""CORS: let browser UIs on the configured origins call the API.

``REGISTRY_CORS_ORIGINS`` lists the origins (``*`` for any); empty, the default,
sends no CORS header at all. A preflight ``OPTIONS`` is answered before any
access check, since browsers send it without credentials.

Only the API (``/v2/``) and ``/token`` take part. The web UI never does: its
session cookie would let a listed origin read a form token and post a delete.
"""

from flask import Response, current_app, request

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "Authorization, Accept, Content-Type, Content-Length, Content-Range, Range, "
    "Docker-Content-Digest, OCI-Subject"
)
EXPOSED_HEADERS = (
    "Docker-Content-Digest, Docker-Distribution-API-Version, Docker-Upload-UUID, "
    "Link, Location, Range, Content-Range, Content-Length, OCI-Subject, "
    "OCI-Filters-Applied, WWW-Authenticate"
)
# How long a browser may reuse a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = "600"
ANY_ORIGIN = "*"
# Where CORS answers are given: the API's paths and the token endpoint.
API_PREFIX = "/v2/"
TOKEN_PATH = "/token"


def init_app(app):
    """Answer preflights and add CORS headers, if any origin is configured."""
    if app.config["REGISTRY_CORS_ORIGINS"]:
        app.before_request(answer_preflight)
        app.after_request(add_cors_headers)


def allowed_origin():
    """Return the value for Access-Control-Allow-Origin, or None if not allowed."""
    origin = request.headers.get("Origin")
    origins = current_app.config["REGISTRY_CORS_ORIGINS"]
    if origin is None or not is_api_path(request.path):
        return None
    if ANY_ORIGIN in origins:
        return ANY_ORIGIN
    return origin if origin in origins else None


def is_api_path(path):
    """Tell whether ``path`` is one CORS may open to other origins."""
    return path.startswith(API_PREFIX) or path == TOKEN_PATH


def answer_preflight():
    """Answer an allowed origin's preflight with 204, before the view runs."""
    is_preflight = request.method == "OPTIONS" and request.headers.get(
        "Access-Control-Request-Method"
    )
    if not is_preflight or allowed_origin() is None:
        return None
    response = Response(status=204)
    del response.headers["Content-Type"]
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response


def add_cors_headers(response):
    """Let an allowed origin read the answer and the registry's headers."""
    origin = allowed_origin()
    response.vary.add("Origin")
    if origin is None:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if origin != ANY_ORIGIN:
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response
