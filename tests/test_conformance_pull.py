"""OCI conformance, pull: blobs and manifests by digest and tag, and error bodies.

Each check of the conformance suite's pull workflow has a test here, against
content pushed through the API as the suite's own setup pushes it.
"""

import pytest

from tests.registry_api import Registry, digest_of, error_code

NAME = "conformance/pull"
MISSING_DIGEST = digest_of(b"hello world")
MISSING_TAG = ".INVALID_MANIFEST_NAME"
SPEC_ERROR_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
}


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


@pytest.fixture
def content(registry):
    """Two images sharing a layer; manifest 0 pushed by tag, manifest 1 by digest."""
    first = registry.push_image("tagtest0")
    second = registry.push_image(layers=first["layers"])
    return {
        "configs": [first["config"], second["config"]],
        "layer": first["layers"][0],
        "manifests": [first["manifest"], second["manifest"]],
    }


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_nonexistent_blob_is_404(registry, content, method):
    response = registry.blob(MISSING_DIGEST, method)
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_existing_blob_is_200_with_its_digest(registry, content, method):
    digest = digest_of(content["configs"][0])
    response = registry.blob(digest, method)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest


def test_blob_get_returns_the_bytes(registry, content):
    response = registry.blob(digest_of(content["layer"]))
    assert response.data == content["layer"]


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_nonexistent_manifest_is_404(registry, content, method):
    assert registry.manifest(MISSING_TAG, method).status_code == 404


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_manifest_by_digest_is_200_with_its_digest(registry, content, method, index):
    digest = digest_of(content["manifests"][index])
    response = registry.manifest(digest, method)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_manifest_by_tag_is_200_with_the_tagged_digest(registry, content, method):
    response = registry.manifest("tagtest0", method)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest_of(
        content["manifests"][0]
    )


def test_head_of_a_manifest_gives_its_length_and_no_body(registry, content):
    response = registry.manifest("tagtest0", "HEAD")
    assert response.content_length == len(content["manifests"][0])
    assert response.data == b""


def test_manifest_get_returns_the_pushed_bytes_and_type(registry, content):
    response = registry.manifest("tagtest0")
    assert response.data == content["manifests"][0]
    assert response.mimetype == "application/vnd.oci.image.manifest.v1+json"


def test_malformed_digest_answers_400_with_a_spec_error_code(registry, content):
    response = registry.manifest("sha256:totallywrong")
    assert response.status_code == 400
    assert error_code(response) in SPEC_ERROR_CODES


def test_manifest_by_tag_in_an_unknown_repository_is_404(client):
    registry = Registry(client, "conformance/nothing")
    response = registry.manifest("tagtest0")
    assert (response.status_code, error_code(response)) == (404, "NAME_UNKNOWN")
