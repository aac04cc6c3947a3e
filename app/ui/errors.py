"""Errors on the pages under ``/ui/``: a page for a browser, OCI JSON for the twin.

The application's own handlers (``app.errors`` and those added beside it)
decide the status, code and message; the blueprint's handler asks them first
and only changes how the answer is dressed. The
JSON twin (``?format=json``, or an Accept header that prefers JSON) gets their
response untouched; anyone else gets the same status as an HTML page with the
site's navigation.
"""

import json

from flask import current_app, render_template, request
from werkzeug.http import HTTP_STATUS_CODES

from app.errors import render_unexpected
from app.ui import access

# Statuses where signing in, or signing in as someone else, may open the page.
SIGN_IN_STATUSES = (401, 403)

# Headers of the JSON answer that still mean something on the page.
KEPT_HEADERS = ("Retry-After", "Allow")


def register_page_errors(blueprint):
    """Dress the errors that the blueprint's views raise as pages for browsers."""
    blueprint.register_error_handler(Exception, answer_error)


def answer_error(exception):
    """Answer what a page raised as the application's handler does, dressed."""
    # The application's own handler, as Flask would pick it without this blueprint.
    handler = current_app._find_error_handler(exception, ()) or render_unexpected
    response = current_app.make_response(handler(exception))
    if wants_json() or response.mimetype != "application/json":
        return response
    return dress(response)


def wants_json():
    """Tell whether the visitor asked for the JSON twin rather than the page."""
    if request.args.get("format") == "json":
        return True
    offered = ["text/html", "application/json"]
    return request.accept_mimetypes.best_match(offered) == "application/json"


def dress(response):
    """Return the OCI error JSON ``response`` as the site's error page."""
    error = json.loads(response.get_data())["errors"][0]
    status = response.status_code
    anonymous = access.current_account() is None
    page = render_template(
        "ui/error.html",
        status=status,
        reason=HTTP_STATUS_CODES.get(status, "Error"),
        code=error["code"],
        message=error["message"],
        offer_sign_in=anonymous and status in SIGN_IN_STATUSES,
    )
    headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    return page, status, headers
