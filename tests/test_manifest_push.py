"""Pushing manifests: exact bytes, checked references, digests, types and limits."""

import hashlib
import json

import pytest

from app.reference import compute_digest
from tests.conftest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    bearer,
    descriptor,
    sha256,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_LIMIT = 4 * 1024 * 1024
NAME = "team/app"


def link_blobs(storage, name, *blobs):
    """Store blobs and link them into repository ``name``, as a push would."""
    for blob in blobs:
        storage.link_blob(name, storage.write_blob([blob]))


def oci_manifest(storage, name, layers=(b"layer",), **fields):
    """Return an OCI image manifest whose config and layers ``name`` holds."""
    config = json.dumps({"os": "linux", "layers": len(layers)}).encode()
    link_blobs(storage, name, config, *layers)
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        **fields,
    }


def artifact(storage, name, subject=None, **fields):
    """Return an OCI artifact manifest with the empty config, and its subject."""
    link_blobs(storage, name, EMPTY_CONFIG, b"payload")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_EMPTY, EMPTY_CONFIG),
        "layers": [descriptor("text/plain", b"payload")],
        **fields,
    }
    if subject is not None:
        manifest["subject"] = subject
    return manifest


def encode(manifest):
    return manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()


def push(client, name, reference, manifest, content_type=OCI_MANIFEST, headers=None):
    """PUT a manifest (a dict or exact bytes) with a push token for ``name``."""
    headers = bearer(client, name, "pull,push") if headers is None else headers
    url = f"/v2/{name}/manifests/{reference}"
    return client.put(
        url, data=encode(manifest), headers=headers, content_type=content_type
    )


def pushed(client, name, reference, manifest, content_type=OCI_MANIFEST):
    """Push a manifest that must be accepted; return its subject-descriptor."""
    response = push(client, name, reference, manifest, content_type)
    assert response.status_code == 201, response.json
    body = encode(manifest)
    return {"mediaType": content_type, "digest": sha256(body), "size": len(body)}


def pull(client, name, reference):
    url = f"/v2/{name}/manifests/{reference}"
    return client.get(url, headers=bearer(client, name))


def error_code(response):
    return response.json["errors"][0]["code"]


def test_pushed_manifest_is_created_at_its_digest(client, storage):
    body = json.dumps(oci_manifest(storage, NAME), indent=2).encode()
    response = push(client, NAME, "v1", body)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{NAME}/manifests/{sha256(body)}"
    assert response.headers["Docker-Content-Digest"] == sha256(body)


def test_pushed_manifest_is_served_byte_for_byte_by_tag(client, storage):
    body = json.dumps(oci_manifest(storage, NAME), indent=7).encode() + b"\n\n"
    push(client, NAME, "v1", body)
    response = pull(client, NAME, "v1")
    assert response.data == body
    assert response.headers["Content-Type"] == OCI_MANIFEST


def test_push_by_digest_stores_the_manifest_without_a_tag(client, storage):
    body = encode(oci_manifest(storage, NAME))
    response = push(client, NAME, sha256(body), body)
    assert response.status_code == 201
    assert pull(client, NAME, sha256(body)).data == body
    assert storage.find_tags(NAME, compute_digest(body)) == []


def test_push_by_sha512_digest_stores_under_sha512(client, storage):
    body = encode(oci_manifest(storage, NAME))
    digest = "sha512:" + hashlib.sha512(body).hexdigest()
    response = push(client, NAME, digest, body)
    assert response.headers["Docker-Content-Digest"] == digest
    assert pull(client, NAME, digest).data == body


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_reference_digest_not_matching_the_body_is_digest_invalid(
    client, storage, algorithm
):
    body = encode(oci_manifest(storage, NAME))
    wrong = f"{algorithm}:" + hashlib.new(algorithm, body + b" ").hexdigest()
    response = push(client, NAME, wrong, body)
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")
    assert not storage.has_blob(compute_digest(body))


def docker_image(storage, name):
    config = b'{"architecture": "amd64"}'
    link_blobs(storage, name, config, b"docker layer")
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, b"docker layer")],
    }


def index_of(client, storage, name, media_type=OCI_INDEX):
    """Return an index (or manifest list) over one pushed child manifest."""
    if media_type == OCI_INDEX:
        child = oci_manifest(storage, name)
    else:
        child = docker_image(storage, name)
    child_descriptor = pushed(client, name, "child", child, child["mediaType"])
    platform = {"architecture": "amd64", "os": "linux"}
    manifests = [{**child_descriptor, "platform": platform}]
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}


MANIFEST_KINDS = {
    "docker image": lambda client, storage: docker_image(storage, NAME),
    "oci image": lambda client, storage: oci_manifest(storage, NAME),
    "oci index": lambda client, storage: index_of(client, storage, NAME),
    "docker list": lambda client, storage: index_of(client, storage, NAME, DOCKER_LIST),
    "artifact": lambda client, storage: artifact(
        storage, NAME, artifactType="text/x-note"
    ),
}


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_every_manifest_kind_is_accepted(client, storage, kind):
    manifest = MANIFEST_KINDS[kind](client, storage)
    response = push(client, NAME, "v1", manifest, manifest["mediaType"])
    assert response.status_code == 201, response.json
    assert pull(client, NAME, "v1").headers["Content-Type"] == manifest["mediaType"]


def test_manifest_with_no_layers_is_accepted(client, storage):
    manifest = oci_manifest(storage, NAME, layers=())
    assert push(client, NAME, "v1", manifest).status_code == 201


def test_body_without_media_type_takes_the_content_type(client, storage):
    manifest = oci_manifest(storage, NAME)
    del manifest["mediaType"]
    response = push(client, NAME, "chart", manifest, OCI_MANIFEST)
    assert response.status_code == 201
    assert pull(client, NAME, "chart").headers["Content-Type"] == OCI_MANIFEST


def test_content_type_parameters_are_ignored(client, storage):
    manifest = oci_manifest(storage, NAME)
    response = push(client, NAME, "v1", manifest, f"{OCI_MANIFEST}; charset=utf-8")
    assert response.status_code == 201
    assert pull(client, NAME, "v1").headers["Content-Type"] == OCI_MANIFEST


def test_body_media_type_is_used_without_a_content_type(client, storage):
    body = encode(oci_manifest(storage, NAME))
    url = f"/v2/{NAME}/manifests/v1"
    response = client.put(url, data=body, headers=bearer(client, NAME, "push,pull"))
    assert response.status_code == 201
    assert pull(client, NAME, "v1").headers["Content-Type"] == OCI_MANIFEST


def test_content_type_and_media_type_mismatch_is_manifest_invalid(client, storage):
    manifest = oci_manifest(storage, NAME)
    response = push(client, NAME, "v1", manifest, DOCKER_MANIFEST)
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")
    assert not storage.has_blob(compute_digest(encode(manifest)))


def malformed(storage, change):
    """Return the body of a valid OCI manifest after ``change`` edits it."""
    manifest = oci_manifest(storage, NAME)
    change(manifest)
    return encode(manifest)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.pop("mediaType"),
        lambda m: m.update(mediaType="application/json"),
        lambda m: m.update(mediaType=["not", "a", "string"]),
        lambda m: m.update(schemaVersion=1),
        lambda m: m.pop("config"),
        lambda m: m.pop("layers"),
        lambda m: m.update(layers={"digest": "sha256:" + "a" * 64}),
        lambda m: m["layers"].append("sha256:" + "a" * 64),
        lambda m: m["layers"].append({"digest": "sha256:short"}),
        lambda m: m["config"].update(digest="md5:" + "a" * 32),
        lambda m: m.update(subject={"digest": 7}),
        lambda m: m.update(annotations=["a"]),
    ],
    ids=[
        "no type anywhere",
        "not a manifest type",
        "type not a string",
        "schema version 1",
        "no config",
        "no layers",
        "layers not a list",
        "layer not a descriptor",
        "malformed layer digest",
        "unsupported config digest",
        "malformed subject",
        "annotations not an object",
    ],
)
def test_malformed_manifest_is_manifest_invalid(client, storage, change):
    response = push(client, NAME, "v1", malformed(storage, change), content_type="")
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"{", b"[]", b'"manifest"', b"\xff\xfe"]
)
def test_body_that_is_not_a_json_object_is_manifest_invalid(client, body):
    response = push(client, NAME, "v1", body)
    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")


def test_missing_blob_is_manifest_blob_unknown_and_nothing_is_stored(client, storage):
    manifest = oci_manifest(storage, NAME)
    manifest["layers"].append(descriptor(OCI_LAYER, b"never uploaded"))
    response = push(client, NAME, "v1", manifest)
    assert (response.status_code, error_code(response)) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    assert response.json["errors"][0]["detail"] == {"digest": sha256(b"never uploaded")}
    assert not storage.has_blob(compute_digest(encode(manifest)))
    assert pull(client, NAME, "v1").status_code == 404


def test_missing_config_is_manifest_blob_unknown(client, storage):
    manifest = oci_manifest(storage, NAME)
    manifest["config"] = descriptor(OCI_CONFIG, b'{"never": "uploaded"}')
    response = push(client, NAME, "v1", manifest)
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_blob_held_only_by_another_repository_is_manifest_blob_unknown(client, storage):
    manifest = oci_manifest(storage, "elsewhere")
    response = push(client, NAME, "v1", manifest)
    assert (response.status_code, error_code(response)) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )


def test_index_with_a_missing_child_is_manifest_blob_unknown(client, storage):
    index = index_of(client, storage, NAME)
    index["manifests"].append(descriptor(OCI_MANIFEST, b'{"never": "pushed"}'))
    response = push(client, NAME, "multi", index, OCI_INDEX)
    assert (response.status_code, error_code(response)) == (
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    assert pull(client, NAME, "multi").status_code == 404


def test_index_child_that_is_only_a_blob_is_manifest_blob_unknown(client, storage):
    child = encode(oci_manifest(storage, NAME))
    link_blobs(storage, NAME, child)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, child)],
    }
    response = push(client, NAME, "multi", index, OCI_INDEX)
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_subject_need_not_exist(client, storage):
    subject = descriptor(OCI_MANIFEST, b"a manifest pushed later")
    response = push(client, NAME, "sig", artifact(storage, NAME, subject))
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject["digest"]


def test_manifest_without_subject_has_no_subject_header(client, storage):
    response = push(client, NAME, "v1", oci_manifest(storage, NAME))
    assert "OCI-Subject" not in response.headers


def padded_manifest(storage, size):
    """Return a valid manifest body of exactly ``size`` bytes."""
    manifest = oci_manifest(storage, NAME, annotations={"padding": ""})
    shortfall = size - len(encode(manifest))
    manifest["annotations"]["padding"] = "x" * shortfall
    return encode(manifest)


def test_manifest_of_exactly_the_limit_is_accepted(client, storage):
    body = padded_manifest(storage, MANIFEST_LIMIT)
    assert len(body) == MANIFEST_LIMIT
    assert push(client, NAME, "v1", body).status_code == 201


def test_manifest_one_byte_over_the_limit_is_refused_with_413(client, storage):
    body = padded_manifest(storage, MANIFEST_LIMIT + 1)
    response = push(client, NAME, "v1", body)
    assert (response.status_code, error_code(response)) == (413, "MANIFEST_INVALID")
    assert not storage.has_blob(compute_digest(body))


class EndlessBody:
    """A request body that never ends, counting the bytes handed out."""

    def __init__(self):
        self.given = 0

    def read(self, size=-1):
        size = 64 * 1024 if size is None or size < 0 else min(size, 64 * 1024)
        self.given += size
        return b" " * size


def test_body_without_length_is_read_no_further_than_the_limit(client):
    body = EndlessBody()
    response = client.put(
        f"/v2/{NAME}/manifests/v1",
        headers=bearer(client, NAME, "push"),
        content_type=OCI_MANIFEST,
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert 0 < body.given <= MANIFEST_LIMIT + 1


def test_limit_follows_the_configuration(app, client, storage):
    app.config["REGISTRY_MANIFEST_MAX_SIZE"] = 100
    response = push(client, NAME, "v1", oci_manifest(storage, NAME))
    assert response.status_code == 413
    assert response.json["errors"][0]["detail"]["limit"] == 100


@pytest.mark.parametrize("actions", [None, "pull"])
def test_push_without_a_push_grant_is_unauthorized(client, storage, actions):
    headers = {} if actions is None else bearer(client, NAME, actions)
    response = push(client, NAME, "v1", oci_manifest(storage, NAME), headers=headers)
    assert (response.status_code, error_code(response)) == (401, "UNAUTHORIZED")
    assert "WWW-Authenticate" in response.headers


def test_push_grant_for_another_repository_is_unauthorized(client, storage):
    headers = bearer(client, "other", "push")
    response = push(client, NAME, "v1", oci_manifest(storage, NAME), headers=headers)
    assert response.status_code == 401


def test_pushing_to_a_tag_again_moves_the_tag(client, storage):
    first = pushed(client, NAME, "latest", oci_manifest(storage, NAME))
    second = pushed(client, NAME, "latest", oci_manifest(storage, NAME, (b"b",)))
    response = pull(client, NAME, "latest")
    assert response.headers["Docker-Content-Digest"] == second["digest"]
    assert pull(client, NAME, first["digest"]).status_code == 200


def test_push_creates_the_repository(client, storage):
    pushed(client, NAME, "v1", oci_manifest(storage, NAME))
    assert storage.list_repositories() == [NAME]


@pytest.mark.parametrize(
    "reference, code",
    [
        (".hidden", "MANIFEST_INVALID"),
        ("t" * 129, "MANIFEST_INVALID"),
        ("sha256:" + "A" * 64, "DIGEST_INVALID"),
        ("md5:" + "a" * 32, "DIGEST_INVALID"),
    ],
)
def test_malformed_reference_is_refused(client, storage, reference, code):
    response = push(client, NAME, reference, oci_manifest(storage, NAME))
    assert (response.status_code, error_code(response)) == (400, code)


def test_malformed_name_is_name_invalid(client, storage):
    response = push(client, "Upper/Case", "v1", b"{}", headers={})
    assert (response.status_code, error_code(response)) == (400, "NAME_INVALID")
