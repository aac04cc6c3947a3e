"""The API's most frequent reads, answered without Flask's request machinery.

Pulling images and polling tags make most of a registry's requests, and for a
manifest of a few hundred bytes Flask's request context, routing, session and
response objects cost more than the lookup itself. ``HotReads`` stands in
front of the Flask application and answers a manifest ``GET``/``HEAD`` and a
tag list ``GET`` on its own when the request is plainly well formed, its token
grants the pull, and the storage holds what is asked for. It calls the same
functions the views call. Everything else, every error answer included, goes
on to Flask, so an answer is the same whichever of the two gives it.
"""

import re
import time

from app.auth import bearer_token
from app.auth.tokens import allows
from app.errors import RegistryError
from app.metrics import record_request
from app.reference import validate_name
from app.storage.errors import StorageError
from app.v2 import manifests, tags
from app.v2.base import API_VERSION_HEADER

MANIFEST_PATH = re.compile(r"/v2/(.+)/manifests/([^/]+)")
TAGS_PATH = re.compile(r"/v2/(.+)/tags/list")
# A query read here only when no parser could take it another way: known names,
# each once, values of characters that need no decoding.
QUERY_PART = re.compile(r"(n)=([0-9]*)|(last)=([A-Za-z0-9._-]*)")
READ_METHODS = frozenset({"GET", "HEAD"})
# The endpoints the metrics count these answers under, as Flask names them.
MANIFEST_ROUTE = f"{manifests.blueprint.name}.{manifests.get_manifest.__name__}"
TAGS_ROUTE = f"{tags.blueprint.name}.{tags.list_tags.__name__}"


def init_app(app):
    """Stand in front of the whole application, metrics middleware included."""
    app.wsgi_app = HotReads(app, app.wsgi_app)


class HotReads:
    """WSGI middleware answering successful manifest reads and tag lists itself.

    It stands outermost and counts its own answers in the metrics, as the
    metrics middleware behind it counts the others.
    """

    def __init__(self, flask_app, wsgi_app):
        self.flask_app = flask_app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        answer = None
        if method in READ_METHODS and "HTTP_ORIGIN" not in environ:
            try:
                answer = self.answer(environ)
            except (RegistryError, StorageError, OSError):
                answer = None  # Flask says what is wrong, in its own words
        if answer is None:
            return self.wsgi_app(environ, start_response)
        route, headers, body = answer
        headers.append(("Content-Length", str(len(body))))
        headers.append(API_VERSION_HEADER)
        start_response("200 OK", headers)
        record_request(route, method, "200", len(body), time.perf_counter() - started)
        return [] if method == "HEAD" else [body]

    def answer(self, environ):
        """Return (route, headers, body) for a request answered here, else None."""
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/v2/"):
            return None
        if found := MANIFEST_PATH.fullmatch(path):
            return self.manifest(environ, *found.groups())
        if environ["REQUEST_METHOD"] == "GET" and (found := TAGS_PATH.fullmatch(path)):
            return self.tag_list(environ, path, found[1])
        return None

    def manifest(self, environ, name, reference):
        name = validate_name(name)
        reference = manifests.lookup_reference(reference)
        if not self.may_pull(environ, name):
            return None
        manifest = manifests.find_manifest(self.storage, name, reference)
        headers = list(manifests.manifest_headers(manifest).items())
        return MANIFEST_ROUTE, headers, manifest.body

    def tag_list(self, environ, path, name):
        query = simple_query(environ.get("QUERY_STRING", ""))
        if query is None:
            return None
        name = validate_name(name)
        if not self.may_pull(environ, name):
            return None
        default_size = self.flask_app.config["REGISTRY_PAGE_SIZE"]
        entries = self.storage.list_tags(name)
        page, next_link = tags.paginate(entries, path, query, default_size)
        body = tags.listing_json({"name": name, "tags": page}).encode()
        headers = [("Content-Type", "application/json")]
        if next_link:
            headers.append(("Link", next_link))
        return TAGS_ROUTE, headers, body

    def may_pull(self, environ, name):
        """Tell whether the request's token grants pulling from ``name``."""
        token = bearer_token(environ.get("HTTP_AUTHORIZATION", ""))
        if token is None:
            return False
        grant = self.flask_app.extensions["registry_tokens"].verify(token)
        return grant is not None and allows(grant, "repository", name, "pull")

    @property
    def storage(self):
        return self.flask_app.extensions["registry_storage"]


def simple_query(text):
    """Return a query's ``n`` and ``last`` if it plainly has nothing else, else None."""
    query = {}
    for part in text.split("&") if text else ():
        found = QUERY_PART.fullmatch(part)
        if found is None:
            return None
        key, value = (found[1], found[2]) if found[1] else (found[3], found[4])
        if key in query:
            return None
        query[key] = value
    return query
