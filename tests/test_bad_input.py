"""Bad input: each gets its OCI error code and status, and leaves the tree as it was.

"As it was" is checked on the whole storage tree: no blob, link, tag, upload
byte or temporary file may appear or change because of a refused request.
"""

import io
import os
import uuid

import pytest

from tests.registry_api import Registry, digest_of, encode, error_code, tree_state

NAME = "bad/input"
BLOB = os.urandom(1000)
FIRST = BLOB[:100]


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


@pytest.fixture
def location(registry):
    """An upload already holding its first 100 bytes."""
    location = registry.start_upload().headers["Location"]
    assert registry.patch(location, FIRST, "0-99").status_code == 202
    return location


@pytest.fixture
def unchanged(storage):
    """Assert, after the test, that the storage tree is as it was before it."""
    before = tree_state(storage.root)
    yield
    assert tree_state(storage.root) == before


def truncated(registry, method, url, declared, sent, headers=None, **kwargs):
    """Send a body that ends after ``sent`` bytes although it declares more.

    The input is marked terminated, as gunicorn marks it, so nothing below the
    application pads or checks the body on its behalf.
    """
    environ = {"CONTENT_LENGTH": str(declared), "wsgi.input_terminated": True}
    return registry.request(
        method,
        url,
        {"Content-Type": "application/octet-stream", **(headers or {})},
        input_stream=io.BytesIO(sent),
        environ_overrides=environ,
        **kwargs,
    )


# Content-Range.


@pytest.mark.parametrize(
    "content_range",
    ["abc", "100", "100-", "-199", "100-199-299", "100 199", "0x64-0xc7", ""],
)
def test_content_range_that_does_not_parse_is_416(
    registry, location, unchanged, content_range
):
    response = registry.patch(location, BLOB[100:200], content_range)
    assert (response.status_code, error_code(response)) == (416, "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize("content_range", ["100-149", "100-299", "199-100"])
def test_content_range_disagreeing_with_the_body_is_refused(
    registry, location, unchanged, content_range
):
    response = registry.patch(location, BLOB[100:200], content_range)
    assert response.status_code in (400, 416)
    assert error_code(response) == "BLOB_UPLOAD_INVALID"


# Positions of thousands of digits, more than Python converts from text.
HUGE = "9" * 5000


@pytest.mark.parametrize(
    "content_range, status",
    [(f"100-{HUGE}", 400), (f"{HUGE}-{HUGE}", 416), (f"bytes {HUGE}-1/*", 400)],
    ids=["end", "both", "start"],
)
def test_content_range_of_thousands_of_digits_is_refused(
    registry, location, unchanged, content_range, status
):
    response = registry.patch(location, BLOB[100:200], content_range)
    assert (response.status_code, error_code(response)) == (
        status,
        "BLOB_UPLOAD_INVALID",
    )

    closing = registry.put(location, digest_of(BLOB), BLOB[100:], content_range)
    assert closing.status_code in (400, 416)


def test_content_range_behind_thousands_of_zeros_is_read(registry, location):
    zeros = "0" * 5000
    response = registry.patch(location, BLOB[100:200], f"{zeros}100-{zeros}199")
    assert response.status_code == 202
    assert response.headers["Range"] == "0-199"


def test_chunk_past_the_end_is_416(registry, location, unchanged):
    response = registry.patch(location, BLOB[200:300], "200-299")
    assert response.status_code == 416


def test_bad_content_range_on_the_closing_put_stores_nothing(
    registry, location, unchanged
):
    response = registry.put(location, digest_of(BLOB), BLOB[150:], "150-999")
    assert response.status_code == 416


# Unknown uploads.


@pytest.mark.parametrize(
    "upload_id", [str(uuid.uuid4()), "not-an-id", "..", "%2e%2e%2ftmp"]
)
@pytest.mark.parametrize("method", ["PATCH", "PUT", "GET", "DELETE"])
def test_unknown_upload_is_blob_upload_unknown(
    registry, location, unchanged, upload_id, method
):
    url = registry.url(f"blobs/uploads/{upload_id}")
    response = registry.request(
        method, url, data=BLOB, query_string={"digest": digest_of(BLOB)}
    )
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] in ("BLOB_UPLOAD_UNKNOWN", "NAME_UNKNOWN")


def test_upload_of_another_repository_is_unknown_here(
    client, registry, location, unchanged
):
    upload_id = location.rsplit("/", 1)[1]
    other = Registry(client, "bad/other")
    url = other.url(f"blobs/uploads/{upload_id}")
    response = other.put(url, digest_of(FIRST))
    assert (response.status_code, error_code(response)) == (404, "BLOB_UPLOAD_UNKNOWN")


# Digests.

BAD_DIGESTS = [
    "md5:" + "0" * 32,
    "sha384:" + "0" * 96,
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "sha256:" + "0" * 128,
    "sha512:" + "0" * 64,
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "sha256",
    "",
]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_monolithic_post_with_a_malformed_digest_is_digest_invalid(
    registry, unchanged, digest
):
    response = registry.start_upload(data=BLOB, digest=digest)
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_closing_put_with_a_malformed_digest_is_digest_invalid(
    registry, location, unchanged, digest
):
    response = registry.put(location, digest, BLOB[100:], "100-999")
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_mount_of_a_malformed_digest_is_digest_invalid(registry, unchanged, digest):
    response = registry.start_upload(mount=digest, **{"from": "bad/other"})
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_mount_from_a_malformed_name_is_name_invalid(registry, unchanged):
    response = registry.start_upload(mount=digest_of(BLOB), **{"from": "../etc"})
    assert (response.status_code, error_code(response)) == (400, "NAME_INVALID")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_digest_not_matching_the_bytes_stores_no_blob(
    registry, storage, unchanged, algorithm
):
    wrong = digest_of(b"other bytes", algorithm)
    response = registry.start_upload(data=BLOB, digest=wrong)
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_closing_put_with_the_wrong_digest_stores_no_blob(registry, location, storage):
    blobs_before = tree_state(os.path.join(storage.root, "blobs"))
    response = registry.put(location, digest_of(b"other"), BLOB[100:], "100-999")
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")
    assert tree_state(os.path.join(storage.root, "blobs")) == blobs_before
    assert registry.blob(digest_of(BLOB)).status_code == 404


# Bodies shorter than their Content-Length.


def test_truncated_monolithic_post_is_size_invalid(registry, unchanged):
    response = truncated(
        registry,
        "POST",
        registry.url("blobs/uploads/"),
        len(BLOB),
        BLOB[:500],
        query_string={"digest": digest_of(BLOB)},
    )
    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")


@pytest.mark.parametrize("content_range", [None, "100-999"])
def test_truncated_patch_is_size_invalid(registry, location, unchanged, content_range):
    headers = {"Content-Range": content_range} if content_range else {}
    response = truncated(
        registry, "PATCH", location, 900, BLOB[100:500], headers=headers
    )
    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")


def test_truncated_closing_put_is_size_invalid(registry, location, unchanged):
    response = truncated(
        registry,
        "PUT",
        location,
        900,
        BLOB[100:500],
        query_string={"digest": digest_of(BLOB)},
    )
    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")


def test_upload_completes_after_a_truncated_patch(registry, location):
    truncated(registry, "PATCH", location, 900, BLOB[100:500])
    registry.patch(location, BLOB[100:], "100-999")
    assert registry.put(location, digest_of(BLOB)).status_code == 201
    assert registry.blob(digest_of(BLOB)).data == BLOB


# Manifests.


@pytest.fixture
def image(registry):
    """The blobs of an image, pushed, and its manifest document."""
    return registry.push_image_blobs()


@pytest.mark.parametrize(
    "body",
    [b"blablabla", b"", b"{", b"[]", b'"text"', b"\xff\xfe", b'{"schemaVersion": 2'],
    ids=["words", "empty", "open-brace", "array", "string", "binary", "cut-short"],
)
def test_manifest_that_is_not_a_json_object_is_manifest_invalid(
    registry, image, unchanged, body
):
    response = registry.push_manifest("v1", body)
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")


@pytest.mark.parametrize(
    "field, value",
    [
        ("layers", "not a list"),
        ("layers", [{"digest": "sha256:short"}]),
        ("config", None),
        ("schemaVersion", 1),
        ("subject", {"digest": "md5:" + "0" * 32}),
    ],
)
def test_malformed_manifest_is_manifest_invalid(
    registry, image, unchanged, field, value
):
    response = registry.push_manifest("v1", encode({**image, field: value}))
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")


def test_manifest_naming_a_missing_blob_leaves_nothing(registry, image, unchanged):
    document = {**image, "layers": image["layers"] + [image["layers"][0]]}
    document["layers"][-1] = {**document["layers"][-1], "digest": digest_of(b"gone")}
    response = registry.push_manifest("v1", encode(document))
    assert (response.status_code, error_code(response)) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )


@pytest.mark.parametrize("digest", BAD_DIGESTS[:8])
def test_manifest_pushed_to_a_malformed_digest_is_digest_invalid(
    registry, image, unchanged, digest
):
    response = registry.push_manifest(digest, encode(image))
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_manifest_pushed_to_another_digest_is_digest_invalid(
    registry, image, unchanged
):
    response = registry.push_manifest(digest_of(b"not it"), encode(image))
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_manifest_pushed_to_a_malformed_tag_is_refused(registry, image, unchanged):
    response = registry.push_manifest(".hidden", encode(image))
    assert response.status_code == 400
    assert error_code(response) in ("TAG_INVALID", "MANIFEST_INVALID")


def test_manifest_cut_short_is_size_invalid_even_if_what_came_parses(
    registry, image, unchanged
):
    body = encode(image) + b"\n\n"
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    url = registry.url("manifests/v1")
    response = truncated(registry, "PUT", url, len(body), body[:-2], headers)
    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")
