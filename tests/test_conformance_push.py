"""OCI conformance, push: streamed, monolithic and chunked uploads, mounts, manifests.

The checks of the conformance suite's push workflow, plus the details the
registry promises beyond them: sha512 digests, Content-Range without ``bytes=``,
416 leaving the upload as it was, and the manifest checks of the spec.
"""

import io
import os

import pytest

from tests.registry_api import (
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    digest_of,
    encode,
    error_code,
    image_blobs,
    image_manifest,
    tree_state,
)

NAME = "conformance/push"
CROSSMOUNT = "conformance/crossmount"
MISSING_DIGEST = digest_of(b"hello world")
BLOB = os.urandom(42)
FIRST, SECOND = BLOB[:22], BLOB[22:]
FIRST_RANGE, SECOND_RANGE = "0-21", "22-41"


@pytest.fixture
def registry(client):
    return Registry(client, NAME, CROSSMOUNT)


@pytest.fixture
def location(registry):
    """The location of a freshly opened upload."""
    response = registry.start_upload()
    assert response.status_code == 202
    return response.headers["Location"]


def stored_blob(registry, data, name=None):
    """Return the bytes the registry serves under ``data``'s digest, or None."""
    response = registry.blob(digest_of(data), name=name)
    return response.data if response.status_code == 200 else None


# Streamed uploads.


def test_streamed_patch_is_202(registry, location):
    response = registry.patch(location, BLOB)
    assert response.status_code == 202
    assert response.headers["Location"] == location


def test_empty_put_after_a_streamed_patch_is_201(registry, location):
    registry.patch(location, BLOB)
    response = registry.put(location, digest_of(BLOB))
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{NAME}/blobs/{digest_of(BLOB)}"


def test_chunked_transfer_encoding_patch_is_taken_whole(registry, location):
    response = registry.request(
        "PATCH",
        location,
        {"Transfer-Encoding": "chunked"},
        input_stream=io.BytesIO(BLOB),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.headers["Range"] == f"0-{len(BLOB) - 1}"
    assert registry.put(location, digest_of(BLOB)).status_code == 201


# Monolithic uploads.


def test_nonexistent_blob_is_404(registry):
    assert registry.blob(MISSING_DIGEST).status_code == 404


def test_post_with_digest_and_body_is_201_and_pullable(registry):
    response = registry.start_upload(data=BLOB, digest=digest_of(BLOB))
    assert (response.status_code, response.headers["Location"]) == (
        201,
        f"/v2/{NAME}/blobs/{digest_of(BLOB)}",
    )
    assert stored_blob(registry, BLOB) == BLOB


def test_post_opens_an_upload(registry):
    response = registry.start_upload()
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{NAME}/blobs/uploads/")


def test_put_of_the_whole_blob_is_201_and_pullable(registry, location):
    _config, layer = image_blobs()
    response = registry.put(location, digest_of(layer), layer)
    assert response.status_code == 201
    assert stored_blob(registry, layer) == layer


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_put_answers_the_digest_it_was_given(registry, location, algorithm):
    response = registry.put(location, digest_of(BLOB, algorithm), BLOB)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest_of(BLOB, algorithm)


def test_sha512_blob_is_served_by_its_sha512_digest(registry):
    registry.push_blob(BLOB, "sha512")
    response = registry.blob(digest_of(BLOB, "sha512"))
    assert (response.status_code, response.data) == (200, BLOB)


# Chunked uploads.


def test_out_of_order_first_chunk_is_416(registry, location):
    response = registry.patch(location, SECOND, SECOND_RANGE)
    assert response.status_code == 416


def test_first_chunk_is_202_with_its_range(registry, location):
    response = registry.patch(location, FIRST, FIRST_RANGE)
    assert response.status_code == 202
    assert response.headers["Range"] == FIRST_RANGE


def test_retried_chunk_is_416(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    assert registry.patch(location, FIRST, FIRST_RANGE).status_code == 416


def test_get_on_the_upload_is_204_with_range_and_location(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    response = registry.request("GET", location)
    assert response.status_code == 204
    assert (response.headers["Range"], response.headers["Location"]) == (
        FIRST_RANGE,
        location,
    )


def test_second_chunk_then_empty_put_stores_the_blob(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    response = registry.patch(location, SECOND, SECOND_RANGE)
    assert (response.status_code, response.headers["Range"]) == (202, "0-41")
    assert registry.put(location, digest_of(BLOB)).status_code == 201
    assert stored_blob(registry, BLOB) == BLOB


def test_last_chunk_may_come_with_the_put(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    response = registry.put(location, digest_of(BLOB), SECOND, SECOND_RANGE)
    assert response.status_code == 201
    assert stored_blob(registry, BLOB) == BLOB


def test_chunks_may_close_with_a_sha512_digest(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    registry.patch(location, SECOND, SECOND_RANGE)
    response = registry.put(location, digest_of(BLOB, "sha512"))
    assert response.status_code == 201
    assert registry.blob(digest_of(BLOB, "sha512")).data == BLOB


@pytest.mark.parametrize(
    "content_range, data",
    [("0-21", FIRST), ("30-41", BLOB[30:]), ("10-31", BLOB[10:32])],
    ids=["retry", "gap", "overlap"],
)
def test_misplaced_chunk_is_416_and_leaves_the_upload_as_it_was(
    registry, location, storage, content_range, data
):
    registry.patch(location, FIRST, FIRST_RANGE)
    before = tree_state(storage.root)
    response = registry.patch(location, data, content_range)
    assert (response.status_code, error_code(response)) == (416, "BLOB_UPLOAD_INVALID")
    assert tree_state(storage.root) == before


def test_upload_continues_correctly_after_a_416(registry, location):
    registry.patch(location, FIRST, FIRST_RANGE)
    registry.patch(location, BLOB[10:32], "10-31")
    registry.patch(location, SECOND, SECOND_RANGE)
    assert registry.put(location, digest_of(BLOB)).status_code == 201
    assert stored_blob(registry, BLOB) == BLOB


# Cancelling.


def test_delete_of_an_upload_is_204(registry, location):
    assert registry.request("DELETE", location).status_code == 204


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_cancelled_upload_is_blob_upload_unknown(registry, location, method):
    registry.patch(location, FIRST)
    registry.request("DELETE", location)
    response = registry.request(
        method, location, query_string={"digest": digest_of(FIRST)}
    )
    assert (response.status_code, error_code(response)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_cancelled_upload_leaves_nothing_behind(registry, location, storage):
    registry.patch(location, FIRST)
    registry.request("DELETE", location)
    assert os.listdir(os.path.join(storage.root, "uploads")) == []


# Cross-repository mounts.


def test_mount_of_a_missing_blob_without_from_opens_an_upload(registry):
    response = registry.start_upload(CROSSMOUNT, mount=MISSING_DIGEST)
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{CROSSMOUNT}/blobs/uploads/")


def test_mount_from_a_repository_holding_the_blob_is_201(registry):
    registry.push_blob(BLOB)
    response = registry.start_upload(
        CROSSMOUNT, mount=digest_of(BLOB), **{"from": NAME}
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{CROSSMOUNT}/blobs/{digest_of(BLOB)}"


def test_mounted_blob_is_pullable_from_the_new_repository(registry):
    registry.push_blob(BLOB)
    registry.start_upload(CROSSMOUNT, mount=digest_of(BLOB), **{"from": NAME})
    assert stored_blob(registry, BLOB, CROSSMOUNT) == BLOB


def test_mount_from_a_repository_without_the_blob_opens_an_upload(registry):
    response = registry.start_upload(CROSSMOUNT, mount=MISSING_DIGEST, **{"from": NAME})
    assert response.status_code == 202
    assert stored_blob(registry, BLOB, CROSSMOUNT) is None


def test_mount_without_from_finds_the_blob_when_automatic_mount_is_on(registry):
    registry.push_blob(BLOB)
    response = registry.start_upload(CROSSMOUNT, mount=digest_of(BLOB))
    assert response.status_code == 201
    assert stored_blob(registry, BLOB, CROSSMOUNT) == BLOB


def test_mount_without_from_opens_an_upload_when_automatic_mount_is_off(app, registry):
    app.config["REGISTRY_AUTOMATIC_MOUNT"] = False
    registry.push_blob(BLOB)
    response = registry.start_upload(CROSSMOUNT, mount=digest_of(BLOB))
    assert response.status_code == 202
    assert stored_blob(registry, BLOB, CROSSMOUNT) is None


def test_mount_of_a_sha512_digest(registry):
    registry.push_blob(BLOB, "sha512")
    digest = digest_of(BLOB, "sha512")
    response = registry.start_upload(CROSSMOUNT, mount=digest, **{"from": NAME})
    assert response.status_code == 201
    assert registry.blob(digest, name=CROSSMOUNT).data == BLOB


# Manifests.


@pytest.fixture
def image(registry):
    """A config and a layer pushed as blobs, and the manifest naming them."""
    config, layer = image_blobs()
    registry.push_blob(config)
    registry.push_blob(layer)
    return {
        "config": config,
        "layer": layer,
        "manifest": image_manifest(config, [layer]),
    }


def test_nonexistent_manifest_is_404(registry, image):
    assert registry.manifest(".INVALID_MANIFEST_NAME").status_code == 404


def test_manifest_put_to_several_tags_is_201_each_time(registry, image):
    body = encode(image["manifest"])
    for number in range(4):
        response = registry.push_manifest(f"test{number}", body)
        assert (response.status_code, response.headers["Location"]) == (
            201,
            f"/v2/{NAME}/manifests/{digest_of(body)}",
        )


def test_manifest_without_layers_or_media_type_is_accepted(registry, image):
    document = image_manifest(image["config"], [], media_type=None)
    response = registry.push_manifest("emptylayer", encode(document))
    assert response.status_code == 201
    assert registry.manifest("emptylayer").data == encode(document)


def test_pushed_manifest_is_pullable_by_digest(registry, image):
    body = encode(image["manifest"])
    response = registry.push_manifest("test0", body)
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert registry.manifest(digest_of(body)).status_code == 200


def test_manifest_pushed_by_sha512_digest_is_pullable_by_it(registry, image):
    body = encode(image["manifest"])
    digest = digest_of(body, "sha512")
    assert registry.push_manifest(digest, body).status_code == 201
    assert registry.manifest(digest).data == body


def test_content_type_disagreeing_with_media_type_is_manifest_invalid(
    registry, image, storage
):
    before = tree_state(storage.root)
    response = registry.push_manifest("v1", encode(image["manifest"]), OCI_INDEX)
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")
    assert tree_state(storage.root) == before


def test_manifest_naming_a_missing_blob_is_manifest_blob_unknown(
    registry, image, storage
):
    document = image_manifest(image["config"], [image["layer"], b"never pushed"])
    before = tree_state(storage.root)
    response = registry.push_manifest("v1", encode(document))
    assert (response.status_code, error_code(response)) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    assert tree_state(storage.root) == before


def test_manifest_above_the_size_limit_is_413(app, registry, image, storage):
    body = encode(image["manifest"])
    app.config["REGISTRY_MANIFEST_MAX_SIZE"] = len(body) - 1
    before = tree_state(storage.root)
    response = registry.push_manifest("v1", body)
    assert response.status_code == 413
    assert tree_state(storage.root) == before


def test_manifest_of_the_size_limit_is_accepted(app, registry, image):
    body = encode(image["manifest"])
    app.config["REGISTRY_MANIFEST_MAX_SIZE"] = len(body)
    assert registry.push_manifest("v1", body).status_code == 201


def test_oci_manifest_media_type_is_kept(registry, image):
    registry.push_manifest("v1", encode(image["manifest"]))
    assert registry.manifest("v1").mimetype == OCI_MANIFEST


# Teardown, as the suite ends its push workflow.


def test_blob_and_manifest_created_by_a_push_can_be_deleted(registry, image):
    body = encode(image["manifest"])
    registry.push_manifest("test0", body)
    manifest_url = registry.url(f"manifests/{digest_of(body)}")
    assert registry.request("DELETE", manifest_url).status_code == 202
    blob_url = registry.url(f"blobs/{digest_of(image['config'])}")
    assert registry.request("DELETE", blob_url).status_code == 202
