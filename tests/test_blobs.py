"""Pulling blobs: whole, by range, only from a repository that holds them."""

import pytest
from werkzeug.datastructures import Range

from app.v2 import blobs
from tests.conftest import bearer, seed_image, sha256

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LAYER = b"0123456789abcdefghij"


@pytest.fixture
def image(storage):
    return seed_image(storage, "a/b/c", "v1", layers=(LAYER, b""))


@pytest.fixture
def headers(client):
    return bearer(client, "a/b/c")


def blob_url(digest, name="a/b/c"):
    return f"/v2/{name}/blobs/{digest}"


def test_blob_is_served_whole_with_its_headers(client, image, headers):
    response = client.get(blob_url(sha256(LAYER)), headers=headers)
    assert response.data == LAYER
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Docker-Content-Digest"] == sha256(LAYER)
    assert response.headers["Accept-Ranges"] == "bytes"


def test_head_reports_the_true_length(client, image, headers):
    response = client.head(blob_url(sha256(LAYER)), headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(LAYER))
    assert response.data == b""


def test_empty_blob_is_served(client, image, headers):
    response = client.get(blob_url(EMPTY), headers=headers)
    assert response.status_code == 200
    assert response.data == b"" and response.headers["Content-Length"] == "0"


@pytest.mark.parametrize(
    "byte_range, body, content_range",
    [
        ("bytes=0-0", LAYER[:1], "bytes 0-0/20"),
        ("bytes=10-", LAYER[10:], "bytes 10-19/20"),
        ("bytes=-5", LAYER[-5:], "bytes 15-19/20"),
        ("bytes=-20", LAYER, "bytes 0-19/20"),
        ("bytes=-21", LAYER, "bytes 0-19/20"),
        ("bytes=-1000000", LAYER, "bytes 0-19/20"),
        ("bytes=5-9", LAYER[5:10], "bytes 5-9/20"),
        ("bytes=15-100", LAYER[15:], "bytes 15-19/20"),
    ],
)
def test_range_requests_answer_206(
    client, image, headers, byte_range, body, content_range
):
    headers = {**headers, "Range": byte_range}
    response = client.get(blob_url(sha256(LAYER)), headers=headers)
    assert response.status_code == 206
    assert (response.data, response.headers["Content-Range"]) == (body, content_range)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "byte_range",
    [
        "bytes=20-30",
        "bytes=20-",
        "bytes=-0",
        "bytes=-00",
        "bytes= -0 ",
        "BYTES=-0",
    ],
)
def test_unsatisfiable_range_answers_416(client, image, headers, method, byte_range):
    headers = {**headers, "Range": byte_range}
    response = client.open(blob_url(sha256(LAYER)), method=method, headers=headers)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */20"
    assert response.mimetype == "application/json"
    if method == "GET":
        assert response.json["errors"][0]["code"] == "SIZE_INVALID"


@pytest.mark.parametrize("werkzeug_reads", ["0-", "nothing"])
def test_an_empty_suffix_is_416_however_werkzeug_reads_it(
    client, image, headers, monkeypatch, werkzeug_reads
):
    """werkzeug 3.1.8 reads "bytes=-0" as the whole blob, 3.1.9 as no range."""
    parsed = Range("bytes", [(0, None)]) if werkzeug_reads == "0-" else None
    monkeypatch.setattr(blobs, "parse_range_header", lambda header: parsed)

    response = client.get(
        blob_url(sha256(LAYER)), headers={**headers, "Range": "bytes=-0"}
    )

    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */20"


@pytest.mark.parametrize("byte_range", ["bytes=-1", "bytes=-5", "bytes=0-0"])
def test_no_range_of_an_empty_blob_is_satisfiable(client, image, headers, byte_range):
    response = client.get(blob_url(EMPTY), headers={**headers, "Range": byte_range})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */0"


@pytest.mark.parametrize("byte_range", ["bytes=abc", "lines=1-2", "bytes=0-1,4-5"])
def test_unusable_range_is_ignored(client, image, headers, byte_range):
    response = client.get(
        blob_url(sha256(LAYER)), headers={**headers, "Range": byte_range}
    )
    assert response.status_code == 200
    assert response.data == LAYER


def test_blob_of_another_repository_is_not_served(client, image, storage):
    seed_image(storage, "other", "v1", layers=(b"other layer",))
    response = client.get(
        blob_url(sha256(LAYER), "other"), headers=bearer(client, "other")
    )
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_unknown_blob_is_blob_unknown(client, image, headers):
    response = client.get(blob_url("sha256:" + "1" * 64), headers=headers)
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_sha512_digest_is_looked_up(client, image, headers):
    response = client.get(blob_url("sha512:" + "1" * 128), headers=headers)
    assert response.json["errors"][0]["code"] == "BLOB_UNKNOWN"
