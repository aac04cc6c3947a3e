"""OCI conformance, content management: deleting tags, manifests and blobs.

With deletes on, each delete answers 202 and what it removed is gone (404);
with deletes switched off in config, each answers 405 UNSUPPORTED and nothing
changes.
"""

import pytest

from tests.registry_api import Registry, digest_of, error_code, tree_state

NAME = "conformance/management"
TAG = "tagtest0"


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


@pytest.fixture
def image(registry):
    """An image tagged TAG and also ``other``."""
    image = registry.push_image(TAG)
    assert registry.push_manifest("other", image["manifest"]).status_code == 201
    return image


def delete(registry, path):
    return registry.request("DELETE", registry.url(path))


def tag_count(registry):
    return len(registry.tags().json["tags"])


def test_tag_delete_is_202_and_shortens_the_tag_list(registry, image):
    before = tag_count(registry)
    assert delete(registry, f"manifests/{TAG}").status_code == 202
    assert tag_count(registry) == before - 1


def test_tag_delete_keeps_the_manifest(registry, image):
    delete(registry, f"manifests/{TAG}")
    assert registry.manifest(TAG).status_code == 404
    assert registry.manifest(digest_of(image["manifest"])).status_code == 200


def test_manifest_delete_is_202_and_the_manifest_is_gone(registry, image):
    digest = digest_of(image["manifest"])
    assert delete(registry, f"manifests/{digest}").status_code == 202
    assert registry.manifest(digest).status_code == 404


def test_manifest_delete_takes_its_tags_along(registry, image):
    delete(registry, f"manifests/{digest_of(image['manifest'])}")
    assert registry.tags().json["tags"] == []


def test_manifest_delete_after_its_tag_is_still_202(registry, image):
    delete(registry, f"manifests/{TAG}")
    response = delete(registry, f"manifests/{digest_of(image['manifest'])}")
    assert response.status_code == 202


def test_second_manifest_delete_is_404(registry, image):
    delete(registry, f"manifests/{digest_of(image['manifest'])}")
    response = delete(registry, f"manifests/{digest_of(image['manifest'])}")
    assert (response.status_code, error_code(response)) == (404, "MANIFEST_UNKNOWN")


def test_delete_of_an_unknown_tag_is_404(registry, image):
    response = delete(registry, "manifests/never-pushed")
    assert (response.status_code, error_code(response)) == (404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("part", ["config", "layer"])
def test_blob_delete_is_202_and_the_blob_is_gone(registry, image, part):
    blob = image["config"] if part == "config" else image["layers"][0]
    assert delete(registry, f"blobs/{digest_of(blob)}").status_code == 202
    assert registry.blob(digest_of(blob)).status_code == 404


def test_delete_of_an_unknown_blob_is_404(registry, image):
    response = delete(registry, f"blobs/{digest_of(b'hello world')}")
    assert (response.status_code, error_code(response)) == (404, "BLOB_UNKNOWN")


def test_sha512_blob_can_be_deleted(registry, image):
    registry.push_blob(b"sha512 content", "sha512")
    digest = digest_of(b"sha512 content", "sha512")
    assert delete(registry, f"blobs/{digest}").status_code == 202
    assert registry.blob(digest).status_code == 404


@pytest.mark.parametrize("target", ["tag", "manifest", "blob"])
def test_deletes_switched_off_are_405_unsupported_and_change_nothing(
    app, registry, image, storage, target
):
    app.config["REGISTRY_DELETE_ENABLED"] = False
    paths = {
        "tag": f"manifests/{TAG}",
        "manifest": f"manifests/{digest_of(image['manifest'])}",
        "blob": f"blobs/{digest_of(image['config'])}",
    }
    before = tree_state(storage.root)
    response = delete(registry, paths[target])
    assert (response.status_code, error_code(response)) == (405, "UNSUPPORTED")
    assert tree_state(storage.root) == before
