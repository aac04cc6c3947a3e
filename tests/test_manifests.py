"""Pulling manifests: exact bytes, true media type, whatever the Accept header."""

import json

import pytest

from tests.conftest import DOCKER_MANIFEST, bearer, seed_image

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def image(storage):
    return seed_image(storage, "library/hello-world", "latest")


@pytest.fixture
def headers(client):
    return bearer(client, "library/hello-world")


def test_manifest_by_tag_is_served_byte_for_byte(client, image, headers):
    response = client.get("/v2/library/hello-world/manifests/latest", headers=headers)
    assert response.status_code == 200
    assert response.data == image["manifest"]


def test_manifest_carries_type_length_digest_and_etag(client, image, headers):
    response = client.get("/v2/library/hello-world/manifests/latest", headers=headers)
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Content-Length"] == str(len(image["manifest"]))
    assert response.headers["Docker-Content-Digest"] == str(image["digest"])
    assert response.headers["ETag"] == f'"{image["digest"]}"'


def test_manifest_by_digest_is_served(client, image, headers):
    url = f"/v2/library/hello-world/manifests/{image['digest']}"
    response = client.get(url, headers=headers)
    assert response.data == image["manifest"]


def test_head_has_the_headers_of_get_without_a_body(client, image, headers):
    url = "/v2/library/hello-world/manifests/latest"
    head = client.head(url, headers=headers)
    get = client.get(url, headers=headers)
    assert head.data == b""
    for name in ("Content-Type", "Content-Length", "Docker-Content-Digest", "ETag"):
        assert head.headers[name] == get.headers[name]


@pytest.mark.parametrize(
    "accept",
    [
        [f"{OCI_INDEX}, {DOCKER_MANIFEST};q=0.9"],
        [OCI_INDEX, f"{DOCKER_MANIFEST};q=0.9"],
        [OCI_INDEX],
        ["text/html"],
        ["*/*"],
        ["garbage;;;q=x"],
    ],
)
def test_accept_header_never_hides_a_stored_manifest(client, image, headers, accept):
    headers = [*headers.items(), *(("Accept", value) for value in accept)]
    response = client.get("/v2/library/hello-world/manifests/latest", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_MANIFEST


@pytest.mark.parametrize("media_type", [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST])
def test_every_manifest_kind_is_served_with_its_media_type(client, storage, media_type):
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type}).encode()
    digest = storage.put_manifest("multi", body, media_type)
    storage.tag_manifest("multi", "v1", digest)
    response = client.get("/v2/multi/manifests/v1", headers=bearer(client, "multi"))
    assert response.headers["Content-Type"] == media_type
    assert response.data == body


def test_unknown_tag_is_manifest_unknown(client, image, headers):
    response = client.get("/v2/library/hello-world/manifests/nope", headers=headers)
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_unknown_digest_is_manifest_unknown(client, image, headers):
    url = "/v2/library/hello-world/manifests/sha256:" + "0" * 64
    response = client.get(url, headers=headers)
    assert response.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_manifest_of_another_repository_is_not_served(client, storage, image):
    seed_image(storage, "other", "v1", layers=(b"x",))
    url = f"/v2/other/manifests/{image['digest']}"
    response = client.get(url, headers=bearer(client, "other"))
    assert response.status_code == 404


def test_unknown_repository_is_name_unknown(client):
    response = client.get(
        "/v2/nothing/manifests/latest", headers=bearer(client, "nothing")
    )
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "NAME_UNKNOWN"


@pytest.mark.parametrize("reference", ["." + "a", "a" * 129, ".INVALID_MANIFEST_NAME"])
def test_reference_that_cannot_be_a_tag_is_manifest_unknown(
    client, image, headers, reference
):
    url = f"/v2/library/hello-world/manifests/{reference}"
    response = client.get(url, headers=headers)
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize(
    "reference, code",
    [
        ("sha256:" + "A" * 64, "DIGEST_INVALID"),
        ("sha256:abc", "DIGEST_INVALID"),
        ("md5:" + "a" * 32, "DIGEST_INVALID"),
    ],
)
def test_malformed_references_are_refused(client, image, headers, reference, code):
    url = f"/v2/library/hello-world/manifests/{reference}"
    response = client.get(url, headers=headers)
    assert response.status_code == 400
    assert response.json["errors"][0]["code"] == code
