"""``/metrics``: Prometheus counters and histograms of what the registry serves.

Under gunicorn, ``gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh folder before any worker starts, so every worker writes its values there
and a scrape answered by any one of them sums them all. Without that variable
(``flask run``, tests) the values live in the one process.

Requests are counted by a WSGI middleware that only reads what Flask already
knows (the endpoint, the status, the Content-Length it sent) and records when the
server closes the response, so a blob streamed with sendfile is timed to its end.
"""

import functools
import glob
import os
import time

from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import NotFound
from werkzeug.wsgi import ClosingIterator

from app.context import get_storage
from app.errors import RegistryError
from app.storage.errors import StorageError

blueprint = Blueprint("metrics", __name__)

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
ROUTE_KEY = "registry.route"
UNMATCHED_ROUTE = "unmatched"
# Seconds, from a small manifest on loopback to a large layer over a slow link.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Endpoints whose time is a pull or an upload, and what they move.
PULL_ENDPOINTS = {"manifests.get_manifest": "manifest", "blobs.get_blob": "blob"}
UPLOAD_ENDPOINTS = {
    "manifests.put_manifest": "manifest",
    "uploads.start_upload": "blob",
    "uploads.append_upload": "blob",
    "uploads.finish_upload": "blob",
}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Methods counted by name; any other a client makes up is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"}) | BODY_METHODS
OTHER_METHOD = "other"
# A worker's values file starts with the 8-byte length of what it holds.
VALUES_HEADER_SIZE = 8

REQUESTS = Counter(
    "registry_http_requests",
    "HTTP requests answered, by route (the Flask endpoint), method and status.",
    ["route", "method", "status"],
)
BYTES_SERVED = Counter(
    "registry_http_served_bytes",
    "Bytes of response bodies sent, by route (as announced by Content-Length).",
    ["route"],
)
BYTES_RECEIVED = Counter(
    "registry_http_received_bytes",
    "Bytes of request bodies read by the registry, by route.",
    ["route"],
)
PULL_DURATION = Histogram(
    "registry_pull_duration_seconds",
    "Time from receiving a manifest or blob GET to sending its last byte.",
    ["kind"],
    buckets=DURATION_BUCKETS,
)
UPLOAD_DURATION = Histogram(
    "registry_upload_duration_seconds",
    "Time to receive one upload request (blob POST, PATCH, PUT or manifest PUT).",
    ["kind"],
    buckets=DURATION_BUCKETS,
)
TOKENS = Counter(
    "registry_tokens",
    "Token requests, by outcome: issued or refused.",
    ["outcome"],
)


# (metric, label values) -> the labelled child; see ``labelled``.
LABELLED = {}


def init_app(app):
    """Serve /metrics, and count every request the application answers."""
    app.register_blueprint(blueprint)
    app.after_request(remember_route)
    app.wsgi_app = RequestMetrics(app.wsgi_app)


@blueprint.get("/metrics")
def serve_metrics():
    """Answer the Prometheus text format, summed over every worker."""
    if not current_app.config["REGISTRY_METRICS_ENABLED"]:
        raise NotFound()
    registry = CollectorRegistry()
    folder = os.environ.get(MULTIPROCESS_VARIABLE)
    if folder:
        registry.register(WorkersCollector(folder))
    else:
        registry.register(SingleProcessCollector())
    registry.register(StorageCollector(get_storage()))

    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class WorkersCollector:
    """The values every worker wrote into the shared folder, summed.

    A worker creates its file empty and then sizes it, so a scrape can meet a
    file that holds nothing yet; such a file is passed over rather than read.
    """

    def __init__(self, folder):
        self.folder = folder

    def collect(self):
        files = []
        for path in glob.glob(os.path.join(self.folder, "*.db")):
            try:
                if os.path.getsize(path) >= VALUES_HEADER_SIZE:
                    files.append(path)
            except OSError:
                continue  # gone since the listing
        return MultiProcessCollector.merge(files, accumulate=True)


class SingleProcessCollector:
    """This process's own request and token metrics, without the default ones."""

    def collect(self):
        for metric in (REQUESTS, BYTES_SERVED, BYTES_RECEIVED, TOKENS):
            yield from metric.collect()
        for metric in (PULL_DURATION, UPLOAD_DURATION):
            yield from metric.collect()


class StorageCollector:
    """The bytes and count of blobs in the store, read when scraped."""

    def __init__(self, storage):
        self.storage = storage

    def collect(self):
        count, size = 0, 0
        try:
            digests = self.storage.list_blobs()
        except OSError:
            return []  # unreadable store: /readyz says so; the rest still counts
        for digest in digests:
            try:
                size += self.storage.blob_size(digest)
            except (StorageError, RegistryError, OSError):
                # Removed since the listing, or no blob the registry wrote (a
                # folder, a FIFO, a link): not counted, and the scrape answers.
                continue
            count += 1
        stored = GaugeMetricFamily(
            "registry_storage_bytes", "Bytes of blobs (manifests too) in the store."
        )
        stored.add_metric([], size)
        blobs = GaugeMetricFamily("registry_storage_blobs", "Blobs in the store.")
        blobs.add_metric([], count)
        return [stored, blobs]


def remember_route(response):
    """Leave the matched endpoint where the middleware finds it."""
    request.environ[ROUTE_KEY] = request.endpoint or UNMATCHED_ROUTE
    return response


def count_tokens(view):
    """Count a token view's answers: issued when it returns, refused when it raises."""

    @functools.wraps(view)
    def counted(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
        except Exception:
            record_token(issued=False)
            raise
        record_token(issued=True)
        return response

    return counted


def record_token(issued):
    """Count one token issued, or one refused."""
    TOKENS.labels("issued" if issued else "refused").inc()


class RequestMetrics:
    """WSGI middleware: count, size and time each request when it is closed."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        received = None
        if environ.get("REQUEST_METHOD") in BODY_METHODS:
            received = environ["wsgi.input"] = CountingInput(environ["wsgi.input"])
        answer = {}

        def remember_start(status, headers, exc_info=None):
            answer["status"] = status.split(" ", 1)[0]
            answer["length"] = content_length(headers)
            return start_response(status, headers, exc_info)

        def record():
            record_request(
                environ.get(ROUTE_KEY, UNMATCHED_ROUTE),
                environ.get("REQUEST_METHOD"),
                answer.get("status", "500"),
                answer.get("length"),
                time.perf_counter() - started,
                received.count if received is not None else 0,
            )

        return call_when_closed(self.wsgi_app(environ, remember_start), record)


def record_request(route, method, status, length, seconds, received=0):
    """Count one answered request: its route, method, status, bytes and time."""
    if method not in KNOWN_METHODS:
        method = OTHER_METHOD
    labelled(REQUESTS, route, method, status).inc()
    if length and method != "HEAD":
        labelled(BYTES_SERVED, route).inc(length)
    if received:
        labelled(BYTES_RECEIVED, route).inc(received)
    observe_duration(route, method, seconds)


def observe_duration(route, method, seconds):
    """Add a pull or upload request's time to its histogram."""
    if method == "GET" and route in PULL_ENDPOINTS:
        labelled(PULL_DURATION, PULL_ENDPOINTS[route]).observe(seconds)
    elif route in UPLOAD_ENDPOINTS:
        labelled(UPLOAD_DURATION, UPLOAD_ENDPOINTS[route]).observe(seconds)


def labelled(metric, *values):
    """Return the child of ``metric`` for label ``values``, looked up once.

    ``labels()`` takes a lock and checks its arguments on every call; the
    children are few (endpoints, methods, statuses), so they are kept here.
    """
    child = LABELLED.get((metric, values))
    if child is None:
        child = LABELLED[metric, values] = metric.labels(*values)
    return child


def content_length(headers):
    """Return the Content-Length among WSGI headers, or 0 without one."""
    for key, value in headers:
        if key.lower() == "content-length":
            return int(value) if value.isascii() and value.isdigit() else 0
    return 0


def call_when_closed(iterable, callback):
    """Arrange for ``callback`` to run after the server closes ``iterable``.

    The iterable itself is kept where it can be, so that a server still sees the
    file wrapper it handed out and can send the file with sendfile(2).
    """
    close = getattr(iterable, "close", None)

    def closed():
        try:
            if close is not None:
                close()
        finally:
            callback()

    try:
        iterable.close = closed
    except AttributeError:
        return ClosingIterator(iterable, closed)
    return iterable


class CountingInput:
    """A request body stream that counts the bytes read from it."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def read(self, *args):
        data = self.stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args):
        line = self.stream.readline(*args)
        self.count += len(line)
        return line

    def __iter__(self):
        while line := self.readline():
            yield line

    def close(self):
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
