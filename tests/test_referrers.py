"""The referrers API: manifests listed under the subject they name."""

import pytest

from tests.conftest import bearer, descriptor, sha256
from tests.test_manifest_push import (
    NAME,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    artifact,
    encode,
    error_code,
    oci_manifest,
    push,
    pushed,
)

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


@pytest.fixture
def subject(client, storage):
    """The descriptor of an image that artifacts are attached to."""
    return pushed(client, NAME, "v1", oci_manifest(storage, NAME))


def attach(client, storage, subject, artifact_type=SBOM, **fields):
    """Push an artifact whose subject is ``subject``; return its descriptor."""
    manifest = artifact(storage, NAME, subject, artifactType=artifact_type, **fields)
    body = encode(manifest)
    return pushed(client, NAME, sha256(body), body)


def referrers(client, digest, name=NAME, **query):
    url = f"/v2/{name}/referrers/{digest}"
    return client.get(url, query_string=query, headers=bearer(client, name))


def test_artifact_with_subject_is_answered_with_the_subject_header(
    client, storage, subject
):
    manifest = artifact(storage, NAME, subject, artifactType=SBOM)
    response = push(client, NAME, "sbom", manifest)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject["digest"]


def test_artifact_is_listed_under_its_subject_with_its_artifact_type(
    client, storage, subject
):
    sbom = attach(client, storage, subject)
    response = referrers(client, subject["digest"])
    assert response.json["manifests"] == [{**sbom, "artifactType": SBOM}]


def test_referrers_list_is_an_image_index(client, storage, subject):
    attach(client, storage, subject)
    response = referrers(client, subject["digest"])
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.json["schemaVersion"] == 2
    assert response.json["mediaType"] == OCI_INDEX


def test_referrer_without_artifact_type_is_listed_with_its_config_type(
    client, storage, subject
):
    manifest = artifact(storage, NAME, subject)
    pushed(client, NAME, "plain", manifest)
    listed = referrers(client, subject["digest"]).json["manifests"]
    assert [entry["artifactType"] for entry in listed] == [OCI_EMPTY]


def test_referrer_annotations_are_copied(client, storage, subject):
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    attach(client, storage, subject, annotations=annotations)
    listed = referrers(client, subject["digest"]).json["manifests"]
    assert listed[0]["annotations"] == annotations


def test_index_referrer_without_artifact_type_is_listed_without_one(
    client, storage, subject
):
    child = pushed(client, NAME, "child", oci_manifest(storage, NAME, (b"c",)))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [child],
        "subject": subject,
    }
    listed_index = pushed(client, NAME, "index", index, OCI_INDEX)
    listed = referrers(client, subject["digest"]).json["manifests"]
    assert listed == [listed_index]


def test_digest_without_referrers_has_an_empty_list(client, subject):
    response = referrers(client, "sha256:" + "0" * 64)
    assert response.status_code == 200
    assert response.json["manifests"] == []


def test_filter_keeps_only_the_asked_artifact_type(client, storage, subject):
    sbom = attach(client, storage, subject, SBOM)
    attach(client, storage, subject, SIGNATURE)
    response = referrers(client, subject["digest"], artifactType=SBOM)
    assert response.json["manifests"] == [{**sbom, "artifactType": SBOM}]
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


def test_filter_matching_nothing_gives_an_empty_list(client, storage, subject):
    attach(client, storage, subject, SBOM)
    response = referrers(client, subject["digest"], artifactType="text/none")
    assert response.json["manifests"] == []
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


def test_unfiltered_list_has_every_referrer_and_no_filter_header(
    client, storage, subject
):
    attach(client, storage, subject, SBOM)
    attach(client, storage, subject, SIGNATURE)
    response = referrers(client, subject["digest"])
    assert len(response.json["manifests"]) == 2
    assert "OCI-Filters-Applied" not in response.headers


def test_pushing_a_referrer_again_lists_it_once(client, storage, subject):
    attach(client, storage, subject)
    attach(client, storage, subject)
    assert len(referrers(client, subject["digest"]).json["manifests"]) == 1


def test_referrer_of_a_subject_not_yet_pushed_is_listed(client, storage, subject):
    absent = descriptor(OCI_MANIFEST, b"pushed later, if ever")
    sbom = attach(client, storage, absent)
    listed = referrers(client, absent["digest"]).json["manifests"]
    assert [entry["digest"] for entry in listed] == [sbom["digest"]]


def test_referrers_belong_to_their_repository(client, storage, subject):
    attach(client, storage, subject)
    pushed(client, "other", "v1", oci_manifest(storage, "other"))
    response = referrers(client, subject["digest"], name="other")
    assert response.json["manifests"] == []


def test_referrers_of_an_unknown_repository_are_an_empty_index(client):
    response = referrers(client, "sha256:" + "0" * 64, name="nothing")
    assert (response.status_code, response.mimetype) == (200, OCI_INDEX)
    assert response.json["manifests"] == []


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "latest", "sha256:"],
)
def test_malformed_digest_is_digest_invalid(client, subject, digest):
    response = referrers(client, digest)
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_referrers_need_a_pull_grant(client, subject):
    response = client.get(f"/v2/{NAME}/referrers/{subject['digest']}")
    assert (response.status_code, error_code(response)) == (401, "UNAUTHORIZED")
