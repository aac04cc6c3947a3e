"""Errors on the pages under ``/ui/``: a page for a browser, OCI JSON for the twin.

The registry's handlers in ``app.errors`` decide the status, code and message;
these handlers ask them first and only change how the answer is dressed. The
JSON twin (``?format=json``, or an Accept header that prefers JSON) gets their
response untouched; anyone else gets the same status as an HTML page with the
site's navigation.
"""

import json

from flask import render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app import errors
from app.storage.errors import StorageError
from app.ui import access

# Statuses where signing in, or signing in as someone else, may open the page.
SIGN_IN_STATUSES = (401, 403)

# Headers of the JSON answer that still mean something on the page.
KEPT_HEADERS = ("Retry-After", "Allow")


def register_page_errors(blueprint):
    """Dress the errors that the blueprint's views raise as pages for browsers."""
    blueprint.register_error_handler(errors.RegistryError, page_error)
    blueprint.register_error_handler(StorageError, page_storage_error)
    blueprint.register_error_handler(HTTPException, page_http_exception)
    blueprint.register_error_handler(Exception, page_unexpected)


def page_error(error):
    """Answer a RegistryError raised by a page."""
    return dress(errors.render_error(error))


def page_storage_error(error):
    """Answer what storage reported to a page."""
    return dress(errors.render_storage_error(error))


def page_http_exception(exception):
    """Answer an HTTP error Flask raised while serving a page."""
    return dress(errors.render_http_exception(exception))


def page_unexpected(exception):
    """Answer an unexpected failure of a page, logged as for the API."""
    return dress(errors.render_unexpected(exception))


def wants_json():
    """Tell whether the visitor asked for the JSON twin rather than the page."""
    if request.args.get("format") == "json":
        return True
    offered = ["text/html", "application/json"]
    return request.accept_mimetypes.best_match(offered) == "application/json"


def dress(response):
    """Return the OCI JSON ``response`` as is for the twin, else as a page."""
    if wants_json():
        return response

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
