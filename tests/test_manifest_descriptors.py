"""Descriptors of a pushed manifest, checked field by field as the image spec says.

Each refusal is 400 MANIFEST_INVALID naming the field. Manifests stored before
these checks, with sizes of any type, are still listed, inspected, exported
and shown, a bad size reading as unknown.
"""

import json

import pytest

from tests import registry_api as api
from tests.conftest import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST
from tests.registry_api import OCI_INDEX, OCI_MANIFEST, descriptor

NAME = "checked/descriptors"
BAD_SIZES = [-1, 1e308, 999, "3", True, None, [1]]
BAD_MEDIA_TYPES = [5, "no-slash", "a/b/c", "", None]


@pytest.fixture
def registry(client):
    return api.Registry(client, NAME)


def refused_field(registry, storage, document, media_type=OCI_MANIFEST):
    """Push ``document``; assert it is refused, changing nothing; return the field."""
    before = api.tree_state(storage.root)
    response = registry.push_manifest("v1", api.encode(document), media_type)
    assert (response.status_code, api.error_code(response)) == (400, "MANIFEST_INVALID")
    assert api.tree_state(storage.root) == before
    return response.json["errors"][0]["detail"]["field"]


@pytest.mark.parametrize("size", BAD_SIZES)
@pytest.mark.parametrize("part", ["config", "layers"])
def test_a_bad_size_is_refused_naming_the_field(registry, storage, part, size):
    document = registry.push_image_blobs()
    target = document["config"] if part == "config" else document["layers"][0]
    target["size"] = size

    field = refused_field(registry, storage, document)

    assert field == ("config.size" if part == "config" else "layers[0].size")


@pytest.mark.parametrize("media_type", BAD_MEDIA_TYPES)
def test_a_bad_descriptor_media_type_is_refused(registry, storage, media_type):
    document = registry.push_image_blobs()
    document["layers"][0]["mediaType"] = media_type

    assert refused_field(registry, storage, document) == "layers[0].mediaType"


@pytest.mark.parametrize("digest", [7, "sha256:abc", "md5:" + "0" * 32, None])
def test_a_bad_descriptor_digest_is_refused(registry, storage, digest):
    document = registry.push_image_blobs()
    document["config"]["digest"] = digest

    assert refused_field(registry, storage, document) == "config.digest"


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("artifactType", "not a type", "artifactType"),
        ("artifactType", 5, "artifactType"),
        ("annotations", {"a": 1}, "annotations"),
        ("annotations", ["a"], "annotations"),
        ("subject", {"mediaType": OCI_MANIFEST, "digest": "x"}, "subject.digest"),
        ("config", "sha256:0", "config"),
        ("layers", {"0": {}}, "layers"),
    ],
)
def test_a_bad_manifest_field_is_refused(registry, storage, field, value, expected):
    document = registry.push_image_blobs()
    document[field] = value

    assert refused_field(registry, storage, document) == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("urls", "https://example.com/layer"),
        ("urls", [1]),
        ("data", 5),
        ("annotations", {"a": None}),
        ("artifactType", "nope"),
    ],
)
def test_a_bad_optional_descriptor_field_is_refused(registry, storage, key, value):
    document = registry.push_image_blobs()
    document["layers"][0][key] = value

    assert refused_field(registry, storage, document).startswith(f"layers[0].{key}")


def test_a_subject_with_a_bad_size_is_refused(registry, storage):
    document = registry.push_image_blobs()
    document["subject"] = {**descriptor(OCI_MANIFEST, b"elsewhere"), "size": "9"}

    assert refused_field(registry, storage, document) == "subject.size"


def pushed_child(registry):
    """Push an image manifest by digest; return its descriptor."""
    body = api.encode(registry.push_image_blobs())
    assert registry.push_manifest(api.digest_of(body), body).status_code == 201
    return descriptor(OCI_MANIFEST, body)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("size", 1, "manifests[0].size"),
        ("size", "1", "manifests[0].size"),
        ("platform", ["linux", "amd64"], "manifests[0].platform"),
        ("platform", {"os": "linux"}, "manifests[0].platform"),
        ("platform", {"os": "linux", "architecture": 64}, "manifests[0].platform"),
    ],
)
def test_a_bad_index_entry_is_refused(registry, storage, key, value, expected):
    child = {**pushed_child(registry), key: value}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}

    assert refused_field(registry, storage, index, OCI_INDEX) == expected


def test_an_index_with_true_sizes_and_platforms_is_stored(registry):
    platform = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    child = {**pushed_child(registry), "platform": platform}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}

    response = registry.push_manifest("multi", api.encode(index), OCI_INDEX)

    assert response.status_code == 201, response.json


def test_a_manifest_with_every_optional_field_well_formed_is_stored(registry):
    document = registry.push_image_blobs()
    document["layers"][0].update(
        {"urls": ["https://example.com/l"], "annotations": {"a": "b"}, "data": ""}
    )
    document["annotations"] = {"org.example": "yes"}
    document["artifactType"] = "application/vnd.example+json"

    response = registry.push_manifest("v1", api.encode(document))

    assert response.status_code == 201, response.json


# Manifests stored before the checks.


@pytest.fixture
def stored_with_bad_sizes(storage):
    """An image manifest stored directly, its descriptors' sizes of every bad type."""
    config, layers = b'{"os": "linux"}', [b"first layer", b"second"]
    for blob in (config, *layers):
        storage.link_blob(NAME, storage.write_blob([blob]))
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {**descriptor(DOCKER_CONFIG, config), "size": "3"},
        "layers": [
            {**descriptor(DOCKER_LAYER, layers[0]), "size": [1]},
            {**descriptor(DOCKER_LAYER, layers[1]), "size": None},
        ],
    }
    body = json.dumps(document).encode()
    digest = storage.put_manifest(NAME, body, DOCKER_MANIFEST)
    storage.tag_manifest(NAME, "old", digest)
    return len(body) + len(config) + sum(map(len, layers))


@pytest.mark.parametrize(
    "args",
    [["ls"], ["ls", NAME], ["ls", NAME, "--json"], ["inspect", f"{NAME}:old"]],
)
def test_the_command_line_reads_bad_sizes_as_unknown(
    runner, stored_with_bad_sizes, args
):
    result = runner.invoke(args=["registry", *args])

    assert result.exit_code == 0, result.output
    assert result.exception is None


def test_inspect_shows_a_bad_layer_size_as_null(runner, stored_with_bad_sizes):
    result = runner.invoke(args=["registry", "inspect", f"{NAME}:old"])

    details = json.loads(result.output)
    assert [layer["size"] for layer in details["layers"]] == [None, None]
    assert details["size"] == stored_with_bad_sizes


@pytest.mark.parametrize("image_format", ["docker", "oci"])
def test_export_of_a_manifest_with_bad_sizes_writes_it(
    runner, stored_with_bad_sizes, tmp_path, image_format
):
    target = str(tmp_path / "out.tar")
    args = ["export", f"{NAME}:old", target, "--format", image_format]

    result = runner.invoke(args=["registry", *args])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.tar").stat().st_size > 0


def test_the_web_ui_and_the_command_line_agree_on_the_size(
    client, runner, stored_with_bad_sizes
):
    page = client.get(f"/ui/repositories/{NAME}?format=json")
    listed = runner.invoke(args=["registry", "ls", NAME, "--json"])

    [ui_tag] = page.json["tags"]
    [cli_tag] = json.loads(listed.output)
    assert ui_tag["size"] == cli_tag["size"] == stored_with_bad_sizes


@pytest.mark.parametrize("suffix", ["", "?format=json"])
def test_the_manifest_page_shows_bad_sizes_as_unknown(
    client, stored_with_bad_sizes, suffix
):
    response = client.get(f"/ui/manifests/{NAME}/old{suffix}")

    assert response.status_code == 200
    if suffix:
        assert [layer["size"] for layer in response.json["layers"]] == [None, None]


@pytest.mark.parametrize(
    "field, value",
    [
        ("config", {"mediaType": {}, "digest": [None], "size": 1}),
        ("config", {"mediaType": DOCKER_CONFIG, "digest": 7}),
        ("layers", 5),
        ("layers", [{"digest": True, "mediaType": ["x"]}]),
    ],
)
@pytest.mark.parametrize("image_format", ["docker", "oci"])
def test_export_of_a_malformed_stored_manifest_answers_in_one_line(
    runner, storage, tmp_path, field, value, image_format
):
    config = b'{"os": "linux"}'
    storage.link_blob(NAME, storage.write_blob([config]))
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [],
        field: value,
    }
    digest = storage.put_manifest(NAME, json.dumps(document).encode(), DOCKER_MANIFEST)
    storage.tag_manifest(NAME, "odd", digest)
    target = str(tmp_path / "out.tar")

    args = ["export", f"{NAME}:odd", target, "--format", image_format]
    result = runner.invoke(args=["registry", *args])

    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.count("\n") == 1, result.output
