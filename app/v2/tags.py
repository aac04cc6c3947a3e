"""Listing: ``GET /v2/<name>/tags/list`` and ``GET /v2/_catalog``, paginated."""

import bisect
import json
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from app.auth import pullable_repositories, require_access
from app.context import get_storage
from app.errors import RegistryError
from app.reference import validate_name
from app.v2.base import read_number

blueprint = Blueprint("tags", __name__)


class PaginationInvalid(RegistryError):
    code = "UNSUPPORTED"
    message = "n must be a whole number from 0 up"
    status = 400


@blueprint.get("/_catalog")
def list_repositories():
    """List the repositories the caller may pull in lexical order, a page at a time."""
    grant = require_access("registry", "catalog", "*")

    names = pullable_repositories(grant, get_storage().list_repositories())

    page, next_link = paginate(names, request.path, request.args, default_page_size())
    return listing_response({"repositories": page}, next_link)


@blueprint.get("/<path:name>/tags/list")
def list_tags(name):
    """List a repository's tags in lexical order, a page at a time."""
    name = validate_name(name)
    require_access("repository", name, "pull")

    tags = get_storage().list_tags(name)

    page, next_link = paginate(tags, request.path, request.args, default_page_size())
    return listing_response({"name": name, "tags": page}, next_link)


def paginate(entries, path, query, default_size):
    """Return the page that ``n`` and ``last`` ask for, and the next page's link.

    ``entries`` are sorted; ``query`` maps the query's names to their values.
    """
    last = query.get("last")
    count = page_size(query.get("n"), default_size)
    start = 0 if last is None else bisect.bisect_right(entries, last)
    page = entries[start : start + count]
    if len(entries) - start <= count or not page:
        return page, None
    following = urlencode({"n": count, "last": page[-1]})
    return page, f'<{path}?{following}>; rel="next"'


def page_size(text, default_size):
    """Return the ``n`` the client asked for, or ``default_size`` without one."""
    if text is None or text == "":
        return default_size
    if not (text.isascii() and text.isdigit()):
        raise PaginationInvalid(detail={"n": text})
    return read_number(text)


def default_page_size():
    return current_app.config["REGISTRY_PAGE_SIZE"]


def listing_response(body, next_link):
    """Answer a listing as JSON, with the next page's ``Link`` if there is one."""
    response = Response(listing_json(body), mimetype="application/json")
    if next_link:
        response.headers["Link"] = next_link
    return response


def listing_json(body):
    """Encode a listing the way every answer of this API is encoded."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
