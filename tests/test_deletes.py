"""Deleting manifests by digest, with their tags and referrer records, and tags."""

import pytest

from app.reference import parse_digest
from tests.conftest import bearer
from tests.test_manifest_push import (
    NAME,
    artifact,
    error_code,
    oci_manifest,
    pull,
    pushed,
)

MISSING_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def image(client, storage):
    """The descriptor of an image tagged both v1 and latest."""
    manifest = oci_manifest(storage, NAME)
    pushed(client, NAME, "v1", manifest)
    return pushed(client, NAME, "latest", manifest)


def delete(client, reference, name=NAME, actions="delete"):
    url = f"/v2/{name}/manifests/{reference}"
    return client.delete(url, headers=bearer(client, name, actions))


def referrer_digests(client, subject):
    url = f"/v2/{NAME}/referrers/{subject['digest']}"
    response = client.get(url, headers=bearer(client, NAME))
    return [entry["digest"] for entry in response.json["manifests"]]


def test_deleting_a_manifest_is_accepted(client, image):
    response = delete(client, image["digest"])
    assert response.status_code == 202
    assert response.data == b""


def test_deleted_manifest_is_unknown(client, image):
    delete(client, image["digest"])
    response = pull(client, NAME, image["digest"])
    assert (response.status_code, error_code(response)) == (404, "MANIFEST_UNKNOWN")


def test_deleting_a_manifest_removes_every_tag_pointing_at_it(client, image):
    delete(client, image["digest"])
    tags = client.get(f"/v2/{NAME}/tags/list", headers=bearer(client, NAME))
    assert tags.json["tags"] == []
    assert pull(client, NAME, "latest").status_code == 404


def test_deleting_a_manifest_keeps_tags_of_other_manifests(client, storage, image):
    other = pushed(client, NAME, "v2", oci_manifest(storage, NAME, (b"other",)))
    delete(client, image["digest"])
    response = pull(client, NAME, "v2")
    assert response.headers["Docker-Content-Digest"] == other["digest"]


def test_deleting_a_manifest_removes_its_referrer_record(client, storage, image):
    signature = pushed(client, NAME, "sig", artifact(storage, NAME, image))
    assert referrer_digests(client, image) == [signature["digest"]]
    delete(client, signature["digest"])
    assert referrer_digests(client, image) == []


def test_deleting_a_subject_keeps_its_referrers_listed(client, storage, image):
    signature = pushed(client, NAME, "sig", artifact(storage, NAME, image))
    delete(client, image["digest"])
    assert referrer_digests(client, image) == [signature["digest"]]


def test_deleted_manifest_bytes_stay_for_garbage_collection(client, storage, image):
    delete(client, image["digest"])
    assert storage.has_blob(parse_digest(image["digest"]))


def test_deleting_a_tag_keeps_the_manifest(client, image):
    response = delete(client, "latest")
    assert response.status_code == 202
    assert pull(client, NAME, "latest").status_code == 404
    assert pull(client, NAME, image["digest"]).status_code == 200


def test_deleting_a_tag_keeps_other_tags_of_the_manifest(client, image):
    delete(client, "latest")
    response = pull(client, NAME, "v1")
    assert response.headers["Docker-Content-Digest"] == image["digest"]


@pytest.mark.parametrize(
    "name, reference, status, code",
    [
        (NAME, MISSING_DIGEST, 404, "MANIFEST_UNKNOWN"),
        (NAME, "missing", 404, "MANIFEST_UNKNOWN"),
        ("nothing", MISSING_DIGEST, 404, "NAME_UNKNOWN"),
        ("nothing", "latest", 404, "NAME_UNKNOWN"),
        (NAME, "sha256:abc", 400, "DIGEST_INVALID"),
        (NAME, ".tag", 400, "MANIFEST_INVALID"),
    ],
)
def test_delete_of_what_is_not_there_is_refused(
    client, image, name, reference, status, code
):
    response = delete(client, reference, name=name)
    assert (response.status_code, error_code(response)) == (status, code)


@pytest.mark.parametrize("reference", ["digest", "latest"])
def test_deleting_twice_is_manifest_unknown_the_second_time(client, image, reference):
    reference = image["digest"] if reference == "digest" else reference
    delete(client, reference)
    response = delete(client, reference)
    assert (response.status_code, error_code(response)) == (404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("reference", ["digest", "latest"])
def test_deletes_disabled_are_unsupported(app, client, image, reference):
    app.config["REGISTRY_DELETE_ENABLED"] = False
    reference = image["digest"] if reference == "digest" else reference
    response = delete(client, reference)
    assert (response.status_code, error_code(response)) == (405, "UNSUPPORTED")
    assert pull(client, NAME, "latest").status_code == 200


@pytest.mark.parametrize("actions", ["pull", "pull,push"])
def test_delete_without_a_delete_grant_is_unauthorized(client, image, actions):
    response = delete(client, image["digest"], actions=actions)
    assert (response.status_code, error_code(response)) == (401, "UNAUTHORIZED")
    assert pull(client, NAME, image["digest"]).status_code == 200


def test_deleted_manifest_can_be_pushed_again(client, storage, image):
    delete(client, image["digest"])
    manifest = oci_manifest(storage, NAME)
    assert pushed(client, NAME, "v1", manifest) == image
    assert pull(client, NAME, "v1").status_code == 200
