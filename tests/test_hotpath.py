"""Manifest reads and tag lists answered ahead of Flask are the answers Flask gives.

Each request goes once through the whole application and once through Flask
alone; status, headers and body must be the same. Requests that must not be
answered ahead of Flask (errors, unusual queries, CORS) are checked to go on.
"""

import json
import os
import shutil

import pytest
from werkzeug.test import Client

from app.metrics import BYTES_SERVED, REQUESTS, labelled
from app.v2.hotpath import HotReads
from tests.conftest import bearer, get_token, seed_image
from tests.test_safety import ODD_ENTRIES, PLACES, plant

NAME = "team/app"
PASSED_ON = "599 PASSED ON"


@pytest.fixture
def hot(app):
    """The HotReads middleware of the app."""
    layer = app.wsgi_app
    while not isinstance(layer, HotReads):
        layer = layer.wsgi_app
    return layer


@pytest.fixture
def image(storage):
    seeded = seed_image(storage, NAME, "latest")
    for tag in ("v1", "v2", "v3", "v3.1", "w"):
        storage.tag_manifest(NAME, tag, seeded["digest"])
    seed_image(storage, "other", "latest")
    return seeded


def passed_on(environ, start_response):
    start_response(PASSED_ON, [("Content-Type", "text/plain")])
    return [b""]


def answers(hot, method, path, headers):
    """Return (status, sorted headers, body): whole app, Flask only, hot path only."""
    results = []
    for wsgi_app in (hot, hot.wsgi_app, HotReads(hot.flask_app, passed_on)):
        response = Client(wsgi_app).open(path, method=method, headers=headers)
        results.append((response.status, sorted(response.headers), response.data))
        response.close()
    return results


def pull(client, name=NAME):
    return bearer(client, name)


HOT_REQUESTS = [
    ("GET", f"/v2/{NAME}/manifests/latest"),
    ("HEAD", f"/v2/{NAME}/manifests/latest"),
    ("GET", f"/v2/{NAME}/manifests/DIGEST"),
    ("HEAD", f"/v2/{NAME}/manifests/DIGEST"),
    ("GET", f"/v2/{NAME}/tags/list"),
    ("GET", f"/v2/{NAME}/tags/list?n=2"),
    ("GET", f"/v2/{NAME}/tags/list?n=2&last=v1"),
    ("GET", f"/v2/{NAME}/tags/list?last=v3&n=1"),
    ("GET", f"/v2/{NAME}/tags/list?last=v3"),
    ("GET", f"/v2/{NAME}/tags/list?last=zzz"),
    ("GET", f"/v2/{NAME}/tags/list?n=0"),
    ("GET", f"/v2/{NAME}/tags/list?n="),
    ("GET", f"/v2/{NAME}/tags/list?n=6"),
    ("GET", f"/v2/{NAME}/tags/list?n=1000"),
]


@pytest.mark.parametrize("method, path", HOT_REQUESTS)
def test_answered_ahead_of_flask_as_flask_answers(client, hot, image, method, path):
    path = path.replace("DIGEST", str(image["digest"]))
    whole, flask_only, hot_only = answers(hot, method, path, pull(client))
    assert whole[0].startswith("200")
    assert whole == flask_only
    assert hot_only == whole  # and it was the hot path that answered


def test_the_manifest_answer_is_the_stored_manifest(client, hot, image):
    whole, _, _ = answers(hot, "GET", f"/v2/{NAME}/manifests/v1", pull(client))
    headers = dict(whole[1])
    assert whole[2] == image["manifest"]
    assert headers["Docker-Content-Digest"] == str(image["digest"])
    assert headers["Content-Length"] == str(len(image["manifest"]))
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_a_long_tag_list_pages_the_same_way(client, hot, storage, image):
    for index in range(30):
        storage.tag_manifest(NAME, f"t{index:03d}", image["digest"])
    path = f"/v2/{NAME}/tags/list?n=7"
    seen = []
    while path:
        whole, flask_only, hot_only = answers(hot, "GET", path, pull(client))
        assert whole == flask_only == hot_only
        seen += json.loads(whole[2])["tags"]
        link = dict(whole[1]).get("Link")
        path = link[1 : link.index(">")] if link else None
    assert seen == sorted(storage.list_tags(NAME))


def token_headers(client, scope):
    return {"Authorization": f"Bearer {get_token(client, scope)}"}


PASSED_ON_CASES = {
    "no token": lambda client: {},
    "basic credentials": lambda client: {"Authorization": "Basic YTpi"},
    "forged token": lambda client: {"Authorization": "Bearer not.a.token"},
    "another repository": lambda client: pull(client, "other"),
    "push only": lambda client: bearer(client, NAME, "push"),
    "catalog only": lambda client: token_headers(client, "registry:catalog:*"),
    "origin": lambda client: {**pull(client), "Origin": "http://127.0.0.1:9"},
}


@pytest.mark.parametrize("case", PASSED_ON_CASES)
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"/v2/{NAME}/manifests/latest"),
        ("HEAD", f"/v2/{NAME}/manifests/latest"),
        ("GET", f"/v2/{NAME}/tags/list"),
    ],
)
def test_requests_without_the_pull_go_on_to_flask(
    client, hot, image, case, method, path
):
    headers = PASSED_ON_CASES[case](client)
    whole, flask_only, hot_only = answers(hot, method, path, headers)
    assert hot_only[0] == PASSED_ON
    assert whole == flask_only


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"/v2/{NAME}/manifests/missing"),
        ("GET", f"/v2/{NAME}/manifests/sha256:{'0' * 64}"),
        ("GET", f"/v2/{NAME}/manifests/sha256:short"),
        ("GET", f"/v2/{NAME}/manifests/-bad-tag"),
        ("GET", "/v2/team/missing/manifests/latest"),
        ("GET", "/v2/team/missing/tags/list"),
        ("GET", "/v2/Team/App/manifests/latest"),
        ("GET", f"/v2/{NAME}/manifests/latest/"),
        ("GET", f"/v2/{NAME}//manifests/latest"),
        ("GET", f"/v2/{NAME}/tags/list/"),
        ("HEAD", f"/v2/{NAME}/tags/list"),
        ("POST", f"/v2/{NAME}/manifests/latest"),
        ("DELETE", f"/v2/{NAME}/manifests/latest"),
        ("GET", f"/v2/{NAME}/tags/list?n=abc"),
        ("GET", f"/v2/{NAME}/tags/list?n=-1"),
        ("GET", f"/v2/{NAME}/tags/list?n=1&n=2"),
        ("GET", f"/v2/{NAME}/tags/list?last=v%31"),
        ("GET", f"/v2/{NAME}/tags/list?last=v+1"),
        ("GET", f"/v2/{NAME}/tags/list?n=1;last=v1"),
        ("GET", f"/v2/{NAME}/tags/list?page=2"),
        ("GET", f"/v2/{NAME}/tags/list?n"),
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/"),
    ],
)
def test_everything_else_goes_on_to_flask(client, hot, image, method, path):
    headers = pull(client) if "missing" not in path else pull(client, "team/missing")
    whole, flask_only, hot_only = answers(hot, method, path, headers)
    assert hot_only[0] == PASSED_ON
    assert whole == flask_only


def test_a_deleted_tag_is_gone_at_once(client, hot, storage, image):
    headers = pull(client)
    path = f"/v2/{NAME}/manifests/v2"
    assert answers(hot, "GET", path, headers)[0][0].startswith("200")
    storage.delete_tag(NAME, "v2")
    whole, flask_only, hot_only = answers(hot, "GET", path, headers)
    assert whole[0].startswith("404")
    assert hot_only[0] == PASSED_ON
    assert whole == flask_only


MANIFEST_ODD_ENTRIES = [
    (where, kind) for where, kind in ODD_ENTRIES if PLACES[where] == "MANIFEST_UNKNOWN"
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("where, kind", MANIFEST_ODD_ENTRIES)
def test_what_the_registry_did_not_write_goes_on_to_flask(
    client, hot, storage, tmp_path, where, kind, method
):
    outside = tmp_path / "outside"
    outside.write_bytes(b"{}")
    path = plant(storage, kind, where, outside)
    whole, flask_only, hot_only = answers(hot, method, path, pull(client, "a"))
    assert whole[0].startswith("404")
    assert hot_only[0] == PASSED_ON
    assert whole == flask_only


@pytest.mark.parametrize("kind", ["file", "fifo", "loop", "dangling", "outside"])
def test_a_tags_folder_that_is_no_folder_lists_no_tags(
    client, hot, storage, tmp_path, image, kind
):
    folder = os.path.join(storage.root, "repos", NAME, "_tags")
    shutil.rmtree(folder)
    if kind == "file":
        with open(folder, "wb") as file:
            file.write(b"latest")
    elif kind == "fifo":
        os.mkfifo(folder)
    else:
        target = {"loop": "_tags", "dangling": "nothing-here", "outside": tmp_path}
        os.symlink(target[kind], folder)
    path = f"/v2/{NAME}/tags/list"
    whole, flask_only, hot_only = answers(hot, "GET", path, pull(client))
    assert whole == flask_only == hot_only
    assert json.loads(whole[2]) == {"name": NAME, "tags": []}


@pytest.mark.parametrize(
    "method, path, route",
    [
        ("GET", f"/v2/{NAME}/manifests/latest", "manifests.get_manifest"),
        ("HEAD", f"/v2/{NAME}/manifests/latest", "manifests.get_manifest"),
        ("GET", f"/v2/{NAME}/tags/list", "tags.list_tags"),
    ],
)
def test_answers_ahead_of_flask_are_counted_as_flask_counts_them(
    client, hot, image, method, path, route
):
    headers = pull(client)
    counts = []
    for wsgi_app in (hot, hot.wsgi_app):  # ahead of Flask, then through it
        before = metric_values(route, method)
        Client(wsgi_app).open(path, method=method, headers=headers).close()
        after = metric_values(route, method)
        counts.append(tuple(b - a for a, b in zip(before, after, strict=True)))
    assert counts[0] == counts[1]
    assert counts[0][0] == 1  # one request, status 200
    assert (counts[0][1] > 0) == (method == "GET")  # bytes served by GETs only


def metric_values(route, method):
    """(requests with status 200, bytes served) counted so far for ``route``."""
    requests = labelled(REQUESTS, route, method, "200")._value.get()
    served = labelled(BYTES_SERVED, route)._value.get()
    return requests, served
