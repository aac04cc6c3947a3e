"""Export to a docker-load tarball and to OCI layouts, read back by the import."""

import json
import os
import tarfile

import pytest

from app.export import ImageExportError, export_image
from app.images import import_image
from app.reference import compute_digest
from app.storage.filesystem import FilesystemStorage
from tests.conftest import seed_image
from tests.test_images import (
    BUSYBOX_LIKE,
    docker25_files,
    two_platform_layout_files,
    write_tar,
)


@pytest.fixture
def busybox_like(storage, tmp_path):
    """A real (tiny) image, imported from a docker save tarball as hello:1."""
    archive = write_tar(tmp_path / "image.tar", docker25_files(BUSYBOX_LIKE))
    [image] = import_image(storage, archive, "hello:1")
    return image


@pytest.fixture
def fresh_storage(tmp_path):
    return FilesystemStorage(tmp_path / "fresh")


def tar_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_docker_export_names_config_and_layers_in_manifest_json(
    storage, busybox_like, tmp_path
):
    target = str(tmp_path / "out.tar")

    export_image(storage, "hello:1", target)

    members = tar_members(target)
    [entry] = json.loads(members["manifest.json"])
    assert entry["RepoTags"] == ["hello:1"]
    assert {entry["Config"], *entry["Layers"]} <= set(members)


def test_docker_export_imports_back_to_the_same_digest(
    storage, busybox_like, fresh_storage, tmp_path
):
    target = str(tmp_path / "out.tar")
    export_image(storage, "hello:1", target)

    [again] = import_image(fresh_storage, target)

    assert (again.name, again.tag, again.digest) == ("hello", "1", busybox_like.digest)


@pytest.mark.parametrize("target_name", ["layout", "layout.tar"])
def test_oci_export_imports_back_to_the_digest_it_reports(
    storage, busybox_like, fresh_storage, tmp_path, target_name
):
    target = str(tmp_path / target_name)

    exported = export_image(storage, "hello:1", target, "oci")
    [again] = import_image(fresh_storage, target, "copy:1")

    assert str(again.digest) == exported.digest
    assert os.path.isdir(target) == (target_name == "layout")


def test_oci_export_gives_a_docker_manifest_the_oci_types(
    storage, busybox_like, tmp_path
):
    exported = export_image(storage, "hello:1", str(tmp_path / "out"), "oci")

    stored = json.loads(storage.get_manifest("hello", busybox_like.digest).body)
    hex_digest = exported.digest.partition(":")[2]
    written = json.loads((tmp_path / "out/blobs/sha256" / hex_digest).read_bytes())
    assert written["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["digest"] for layer in written["layers"]] == [
        layer["digest"] for layer in stored["layers"]
    ]


def test_oci_export_of_an_index_takes_every_platform(storage, fresh_storage, tmp_path):
    layout = write_tar(tmp_path / "multi.tar", two_platform_layout_files())
    [index] = import_image(storage, layout, "multi:v1")
    target = str(tmp_path / "out")

    export_image(storage, "multi:v1", target, "oci")
    [again] = import_image(fresh_storage, target, "multi:v1")

    assert again.digest == index.digest
    assert len(fresh_storage.list_manifests("multi")) == 3


@pytest.mark.parametrize(
    "platform, architecture", [("linux/arm64", "arm64"), ("linux/amd64", "amd64")]
)
def test_docker_export_of_an_index_takes_the_asked_platform(
    storage, tmp_path, platform, architecture
):
    layout = write_tar(tmp_path / "multi.tar", two_platform_layout_files())
    import_image(storage, layout, "multi:v1")
    target = str(tmp_path / "out.tar")

    export_image(storage, "multi:v1", target, platform_name=platform)

    members = tar_members(target)
    [entry] = json.loads(members["manifest.json"])
    assert json.loads(members[entry["Config"]])["architecture"] == architecture


def test_an_absent_platform_is_a_clear_error(storage, tmp_path):
    layout = write_tar(tmp_path / "multi.tar", two_platform_layout_files())
    import_image(storage, layout, "multi:v1")
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(ImageExportError, match="linux/s390x.*linux/amd64"):
        export_image(
            storage, "multi:v1", str(target / "o.tar"), platform_name="linux/s390x"
        )
    assert os.listdir(target) == []


@pytest.mark.parametrize(
    "reference, message",
    [
        ("hello:absent", "not in the registry"),
        ("Bad Name:1", "invalid"),
        ("hello", "NAME:TAG"),
    ],
)
def test_a_bad_reference_writes_nothing(
    storage, busybox_like, tmp_path, reference, message
):
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(ImageExportError, match=message):
        export_image(storage, reference, str(target / "x.tar"))
    assert os.listdir(target) == []


def test_a_damaged_blob_fails_the_export_and_leaves_nothing(storage, tmp_path):
    image = seed_image(storage, "broken", "v1")
    layer = compute_digest(image["layers"][0])
    blob = os.path.join(storage.root, "blobs", "sha256", layer.hex[:2], layer.hex)
    with open(blob, "wb") as file:
        file.write(b"not what was stored")
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(ImageExportError, match="damaged"):
        export_image(storage, "broken:v1", str(target / "x.tar"))
    assert os.listdir(target) == []


def test_an_existing_folder_is_not_overwritten(storage, busybox_like, tmp_path):
    target = tmp_path / "layout"
    target.mkdir()
    (target / "keep").write_text("mine")

    with pytest.raises(ImageExportError, match="already exists"):
        export_image(storage, "hello:1", str(target), "oci")
    assert os.listdir(target) == ["keep"]


def test_an_artifact_is_not_exported_for_docker(storage, tmp_path):
    config = b"{}"
    storage.link_blob("signed", storage.write_blob([config]))
    descriptor = {
        "mediaType": "application/vnd.example.signature",
        "size": len(config),
        "digest": str(compute_digest(config)),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor,
        "layers": [],
    }
    body = json.dumps(manifest).encode()
    digest = storage.put_manifest("signed", body, manifest["mediaType"])
    storage.tag_manifest("signed", "sig", digest)

    with pytest.raises(ImageExportError, match="not a container image.*--format oci"):
        export_image(storage, "signed:sig", str(tmp_path / "sig.tar"))
    assert not (tmp_path / "sig.tar").exists()
