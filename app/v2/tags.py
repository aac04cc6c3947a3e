"""Listing: ``GET /v2/<name>/tags/list`` and ``GET /v2/_catalog``, paginated."""

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from app.auth import pullable_repositories, require_access
from app.context import get_storage
from app.errors import RegistryError
from app.reference import validate_name

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

    page, next_link = paginate(names, request.path)
    return listing_response({"repositories": page}, next_link)


@blueprint.get("/<path:name>/tags/list")
def list_tags(name):
    """List a repository's tags in lexical order, a page at a time."""
    name = validate_name(name)
    require_access("repository", name, "pull")

    tags = get_storage().list_tags(name)

    page, next_link = paginate(tags, request.path)
    return listing_response({"name": name, "tags": page}, next_link)


def paginate(entries, path):
    """Return the page that ``n`` and ``last`` ask for, and the next page's link."""
    last = request.args.get("last")
    count = page_size()
    if last is not None:
        entries = [entry for entry in entries if entry > last]
    page = entries[:count]
    if len(entries) <= count or not page:
        return page, None
    query = urlencode({"n": count, "last": page[-1]})
    return page, f'<{path}?{query}>; rel="next"'


def page_size():
    """Return the ``n`` the client asked for, or the configured page size."""
    text = request.args.get("n")
    if text is None or text == "":
        return current_app.config["REGISTRY_PAGE_SIZE"]
    if not (text.isascii() and text.isdigit()):
        raise PaginationInvalid(detail={"n": text})
    return int(text)


def listing_response(body, next_link):
    response = jsonify(body)
    if next_link:
        response.headers["Link"] = next_link
    return response
