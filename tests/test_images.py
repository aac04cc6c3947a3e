"""Importing docker-save tarballs and OCI image layouts, built here byte by byte."""

import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass

import pytest

from app import create_app
from app.images import ImageImportError, ImportedImage, import_image
from app.reference import parse_digest
from app.storage.filesystem import FilesystemStorage

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()


# Building archives.


@dataclass(frozen=True)
class Symlink:
    """A symbolic link member of an archive, pointing at ``target``."""

    target: str


def sha256_hex(data):
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256(data):
    """Return the digest string of ``data``."""
    return f"sha256:{sha256_hex(data)}"


def make_layer(path, content):
    """Return an uncompressed layer tar holding one file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


LAYER_ONE = make_layer("bin/hello", b"#!/bin/sh\necho hello\n")
LAYER_TWO = make_layer("etc/greeting", b"hello from a test layer\n" * 100)


def image_config(layers, architecture="amd64"):
    """Return an image config whose rootfs.diff_ids name the uncompressed layers."""
    diff_ids = [sha256(layer) for layer in layers]
    document = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(document).encode()


def add_blob(files, data, media_type=None):
    """Put ``data`` under blobs/sha256/ in ``files``; return its descriptor."""
    files[f"blobs/sha256/{sha256_hex(data)}"] = data
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def legacy_docker_files(images):
    """Return the members of a docker save tarball from before Docker 25."""
    files, entries = {}, []
    for repo_tags, layers in images:
        config = image_config(layers)
        paths = []
        for layer in layers:
            folder = sha256_hex(b"v1 id " + layer)
            files[f"{folder}/VERSION"] = b"1.0"
            files[f"{folder}/layer.tar"] = layer
            paths.append(f"{folder}/layer.tar")
        files[f"{sha256_hex(config)}.json"] = config
        entries.append(
            {
                "Config": f"{sha256_hex(config)}.json",
                "RepoTags": repo_tags,
                "Layers": paths,
            }
        )
    files["manifest.json"] = json.dumps(entries).encode()
    return files


def docker25_files(images, compress=False, through_symlinks=False):
    """Return the members of a Docker 25+ docker save: blobs/ and index.json too.

    Each layer also has a legacy ``<id>/layer.tar`` symlink to its blob; with
    ``through_symlinks``, manifest.json names those links, as skopeo's
    docker-archive writer does.
    """
    files, entries, index = {}, [], []
    for repo_tags, layers in images:
        stored = [
            gzip.compress(layer, mtime=0) if compress else layer for layer in layers
        ]
        descriptors = [add_blob(files, layer, OCI_LAYER) for layer in stored]
        links = [add_legacy_link(files, descriptor) for descriptor in descriptors]
        config = add_blob(files, image_config(layers), OCI_CONFIG)
        index.append(docker25_index_entry(files, config, descriptors, repo_tags[0]))
        paths = links if through_symlinks else [blob_path(d) for d in descriptors]
        entries.append(
            {"Config": blob_path(config), "RepoTags": repo_tags, "Layers": paths}
        )
    files["index.json"] = oci_index(index)
    files["manifest.json"] = json.dumps(entries).encode()
    files["oci-layout"] = LAYOUT_VERSION
    return files


def add_legacy_link(files, descriptor):
    """Add ``<id>/layer.tar`` pointing at a layer's blob; return its path."""
    path = f"{sha256_hex(descriptor['digest'].encode())}/layer.tar"
    files[path] = Symlink(f"../{blob_path(descriptor)}")
    return path


def docker25_index_entry(files, config, layers, repo_tag):
    """Add the OCI manifest of a Docker 25+ save; return its index.json entry."""
    entry = add_blob(files, oci_manifest(config, layers), OCI_MANIFEST)
    entry["annotations"] = {
        "io.containerd.image.name": f"docker.io/library/{repo_tag}",
        REF_NAME: repo_tag.rpartition(":")[2],
    }
    return entry


def oci_manifest(config, layers):
    """Return the bytes of an OCI image manifest."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }
    return json.dumps(document).encode()


def oci_index(descriptors):
    """Return the bytes of an OCI image index."""
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return json.dumps(document).encode()


def add_oci_image(files, architecture="amd64"):
    """Add a gzip-layered OCI image to ``files``; return its manifest descriptor."""
    layer = make_layer("arch", architecture.encode())
    config = add_blob(files, image_config([layer], architecture), OCI_CONFIG)
    compressed = add_blob(files, gzip.compress(layer, mtime=0), OCI_LAYER_GZIP)
    return add_blob(files, oci_manifest(config, [compressed]), OCI_MANIFEST)


def oci_layout_files(ref_name="v1"):
    """Return the members of a one-image OCI layout, as skopeo writes it."""
    files = {"oci-layout": LAYOUT_VERSION}
    entry = add_oci_image(files)
    entry["annotations"] = {REF_NAME: ref_name}
    files["index.json"] = oci_index([entry])
    return files


def two_platform_layout_files():
    """Return an OCI layout whose only entry is a two-platform image index."""
    files = {"oci-layout": LAYOUT_VERSION}
    children = []
    for architecture in ("amd64", "arm64"):
        child = add_oci_image(files, architecture)
        child["platform"] = {"os": "linux", "architecture": architecture}
        children.append(child)
    entry = add_blob(files, oci_index(children), OCI_INDEX)
    entry["annotations"] = {REF_NAME: "multi"}
    files["index.json"] = oci_index([entry])
    return files


def write_tar(path, files):
    """Write ``files`` as a tar, in order, as docker save and skopeo do."""
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, Symlink):
                info.type, info.linkname = tarfile.SYMTYPE, data.target
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def write_folder(root, files):
    """Write ``files`` under ``root``, as skopeo writes an oci: layout."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Symlink):
            path.symlink_to(data.target)
        else:
            path.write_bytes(data)
    return str(root)


def blob_path(descriptor):
    """Return where a layout keeps the blob a descriptor names."""
    return f"blobs/sha256/{descriptor['digest'].partition(':')[2]}"


# Reading what was stored.


@pytest.fixture
def storage(tmp_path):
    """Storage under tmp_path, with no application around it."""
    return FilesystemStorage(tmp_path / "storage")


def stored_manifest(storage, name, tag):
    """Return the Manifest that ``name:tag`` resolves to."""
    return storage.get_manifest(name, storage.resolve_tag(name, tag))


def manifest_blobs(manifest):
    """Return the digests of a stored image manifest's config and layers."""
    document = json.loads(manifest.body)
    return [
        parse_digest(d["digest"]) for d in [document["config"], *document["layers"]]
    ]


def nothing_visible(storage):
    """Tell whether storage shows no repository, and holds no link or tag at all."""
    return storage.list_repositories() == [] and not os.listdir(
        os.path.join(storage.root, "repos")
    )


# docker save tarballs.

DOCKER_LAYOUTS = {"legacy": legacy_docker_files, "docker25": docker25_files}
BUSYBOX_LIKE = [(["busybox-like:1"], [LAYER_ONE, LAYER_TWO])]


@pytest.fixture(params=sorted(DOCKER_LAYOUTS))
def docker_archive(request, tmp_path):
    """A docker save tarball of busybox-like:1, in the old and the Docker 25 layout."""
    files = DOCKER_LAYOUTS[request.param](BUSYBOX_LIKE)
    return write_tar(tmp_path / "image.tar", files)


def test_docker_archive_is_tagged_under_its_repo_tag(storage, docker_archive):
    [image] = import_image(storage, docker_archive)

    assert image == ImportedImage("busybox-like", "1", image.digest, DOCKER_MANIFEST)
    assert storage.resolve_tag("busybox-like", "1") == image.digest


def test_docker_archive_becomes_a_schema_2_manifest(storage, docker_archive):
    import_image(storage, docker_archive)

    manifest = stored_manifest(storage, "busybox-like", "1")
    document = json.loads(manifest.body)
    assert manifest.media_type == DOCKER_MANIFEST
    assert [document["config"]["mediaType"]] + [
        layer["mediaType"] for layer in document["layers"]
    ] == [DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER]


def test_docker_archive_keeps_the_config_bytes(storage, docker_archive):
    import_image(storage, docker_archive)

    config = manifest_blobs(stored_manifest(storage, "busybox-like", "1"))[0]
    assert str(config) == sha256(image_config([LAYER_ONE, LAYER_TWO]))
    assert storage.read_blob(config) == image_config([LAYER_ONE, LAYER_TWO])


def test_docker_layers_are_stored_gzipped_and_decompress_to_the_tars(
    storage, docker_archive
):
    import_image(storage, docker_archive)

    layers = manifest_blobs(stored_manifest(storage, "busybox-like", "1"))[1:]
    tars = [gzip.decompress(storage.read_blob(layer)) for layer in layers]
    assert tars == [LAYER_ONE, LAYER_TWO]


def test_docker_layer_descriptors_give_the_compressed_size_and_digest(
    storage, docker_archive
):
    import_image(storage, docker_archive)

    document = json.loads(stored_manifest(storage, "busybox-like", "1").body)
    stored = [storage.read_blob(parse_digest(d["digest"])) for d in document["layers"]]
    assert [d["size"] for d in document["layers"]] == [len(blob) for blob in stored]
    assert [d["digest"] for d in document["layers"]] == [sha256(b) for b in stored]


def test_every_blob_of_an_imported_image_is_linked(storage, docker_archive):
    import_image(storage, docker_archive)

    blobs = manifest_blobs(stored_manifest(storage, "busybox-like", "1"))
    assert all(storage.repository_has_blob("busybox-like", blob) for blob in blobs)


def test_importing_the_same_archive_again_gives_the_same_digests(
    storage, docker_archive
):
    first = import_image(storage, docker_archive)
    second = import_image(storage, docker_archive)

    assert first == second


def test_importing_into_fresh_storage_gives_the_same_digests(tmp_path, docker_archive):
    first = import_image(FilesystemStorage(tmp_path / "one"), docker_archive)
    second = import_image(FilesystemStorage(tmp_path / "two"), docker_archive)

    assert first == second


def test_target_names_the_imported_image(storage, docker_archive):
    [image] = import_image(storage, docker_archive, "library/hello-world:latest")

    assert (image.name, image.tag) == ("library/hello-world", "latest")
    assert storage.list_repositories() == ["library/hello-world"]


def test_target_without_a_tag_means_latest(storage, docker_archive):
    [image] = import_image(storage, docker_archive, "hello")

    assert storage.resolve_tag("hello", "latest") == image.digest


@pytest.mark.parametrize(
    ("repo_tag", "name"),
    [
        ("docker.io/library/x:1", "library/x"),
        ("localhost:5000/x:1", "x"),
        ("localhost/team/x:1", "team/x"),
        ("team/x:1", "team/x"),
    ],
)
def test_registry_host_is_dropped_from_repo_tags(storage, tmp_path, repo_tag, name):
    files = legacy_docker_files([([repo_tag], [LAYER_ONE])])

    [image] = import_image(storage, write_tar(tmp_path / "image.tar", files))

    assert (image.name, image.tag) == (name, "1")


def test_every_repo_tag_of_an_image_is_tagged(storage, tmp_path):
    files = legacy_docker_files([(["x:1", "x:latest", "y:2"], [LAYER_ONE])])

    imported = import_image(storage, write_tar(tmp_path / "image.tar", files))

    assert [f"{image.name}:{image.tag}" for image in imported] == [
        "x:1",
        "x:latest",
        "y:2",
    ]
    assert len({image.digest for image in imported}) == 1


def test_untagged_docker_image_needs_a_target(storage, tmp_path):
    files = legacy_docker_files([(None, [LAYER_ONE])])
    archive = write_tar(tmp_path / "image.tar", files)

    with pytest.raises(ImageImportError, match="give a target NAME:TAG"):
        import_image(storage, archive)
    assert import_image(storage, archive, "named:1")[0].name == "named"


def test_gzip_layers_of_a_containerd_docker_save_are_stored_as_they_are(
    storage, tmp_path
):
    files = docker25_files(BUSYBOX_LIKE, compress=True)

    import_image(storage, write_tar(tmp_path / "image.tar", files))

    layers = manifest_blobs(stored_manifest(storage, "busybox-like", "1"))[1:]
    compressed = [gzip.compress(layer, mtime=0) for layer in (LAYER_ONE, LAYER_TWO)]
    assert [str(layer) for layer in layers] == [sha256(data) for data in compressed]


def test_unpacked_docker_save_folder_imports_like_the_tarball(storage, tmp_path):
    files = docker25_files(BUSYBOX_LIKE)
    from_tar = import_image(storage, write_tar(tmp_path / "image.tar", files))

    from_folder = import_image(storage, write_folder(tmp_path / "unpacked", files))

    assert from_folder == from_tar


@pytest.mark.parametrize("write", [write_tar, write_folder])
def test_layers_named_through_symlinks_are_followed(storage, tmp_path, write):
    files = docker25_files(BUSYBOX_LIKE, through_symlinks=True)

    import_image(storage, write(tmp_path / "image", files))

    layers = manifest_blobs(stored_manifest(storage, "busybox-like", "1"))[1:]
    tars = [gzip.decompress(storage.read_blob(layer)) for layer in layers]
    assert tars == [LAYER_ONE, LAYER_TWO]


def test_gzip_compressed_docker_save_tarball_is_read(storage, tmp_path):
    plain = write_tar(tmp_path / "image.tar", legacy_docker_files(BUSYBOX_LIKE))
    compressed = tmp_path / "image.tar.gz"
    with open(plain, "rb") as source:
        compressed.write_bytes(gzip.compress(source.read()))

    assert import_image(storage, str(compressed)) == import_image(storage, plain)


# docker save tarballs holding several images.

TWO_IMAGES = [(["first:1"], [LAYER_ONE]), (["second:2"], [LAYER_ONE, LAYER_TWO])]


@pytest.fixture
def two_image_archive(tmp_path):
    """A docker save tarball holding first:1 and second:2."""
    return write_tar(tmp_path / "two.tar", legacy_docker_files(TWO_IMAGES))


def test_every_image_of_a_two_image_archive_is_imported(storage, two_image_archive):
    imported = import_image(storage, two_image_archive)

    assert [(image.name, image.tag) for image in imported] == [
        ("first", "1"),
        ("second", "2"),
    ]
    assert storage.list_repositories() == ["first", "second"]


def test_target_picks_the_image_with_its_tag(storage, two_image_archive):
    [image] = import_image(storage, two_image_archive, "renamed:2")

    layers = manifest_blobs(stored_manifest(storage, "renamed", "2"))[1:]
    assert (image.name, len(layers)) == ("renamed", 2)


def test_target_matching_no_image_lists_what_the_archive_holds(
    storage, two_image_archive
):
    with pytest.raises(ImageImportError, match="first:1, second:2") as caught:
        import_image(storage, two_image_archive, "other:3")

    assert "\n" not in str(caught.value)
    assert nothing_visible(storage)


def test_target_whose_tag_several_images_have_is_refused(storage, tmp_path):
    files = legacy_docker_files([(["a:1"], [LAYER_ONE]), (["b:1"], [LAYER_TWO])])

    with pytest.raises(ImageImportError, match="2 images in the archive match"):
        import_image(storage, write_tar(tmp_path / "two.tar", files), "c:1")
    assert nothing_visible(storage)


def test_target_with_a_registry_host_is_stored_without_it(storage, docker_archive):
    [image] = import_image(storage, docker_archive, "localhost:5000/team/app:2")

    assert (image.name, image.tag) == ("team/app", "2")


# OCI image layouts.


@pytest.fixture(params=["folder", "tar"])
def oci_layout(request, tmp_path):
    """A one-image OCI layout tagged v1, as a folder (oci:) and a tar (oci-archive:)."""
    files = oci_layout_files()
    if request.param == "folder":
        return write_folder(tmp_path / "layout", files), files
    return write_tar(tmp_path / "layout.tar", files), files


def index_entry(files):
    """Return the single descriptor of a layout's index.json."""
    [entry] = json.loads(files["index.json"])["manifests"]
    return entry


def test_oci_layout_is_tagged_under_the_target(storage, oci_layout):
    source, files = oci_layout

    [image] = import_image(storage, source, "hello-oci:v1")

    assert str(image.digest) == index_entry(files)["digest"]
    assert storage.resolve_tag("hello-oci", "v1") == image.digest


def test_oci_manifest_is_stored_byte_for_byte_with_its_media_type(storage, oci_layout):
    source, files = oci_layout

    import_image(storage, source, "hello-oci:v1")

    manifest = stored_manifest(storage, "hello-oci", "v1")
    assert manifest.body == files[blob_path(index_entry(files))]
    assert manifest.media_type == OCI_MANIFEST


def test_oci_blobs_are_stored_as_they_are_and_linked(storage, oci_layout):
    source, files = oci_layout

    import_image(storage, source, "hello-oci:v1")

    blobs = manifest_blobs(stored_manifest(storage, "hello-oci", "v1"))
    assert all(storage.repository_has_blob("hello-oci", blob) for blob in blobs)
    assert [storage.read_blob(b) for b in blobs] == [
        files[f"blobs/sha256/{b.hex}"] for b in blobs
    ]


def test_oci_ref_name_that_is_only_a_tag_needs_a_target(storage, oci_layout):
    source, _files = oci_layout

    with pytest.raises(ImageImportError, match="give a target NAME:TAG"):
        import_image(storage, source)
    assert nothing_visible(storage)


def test_oci_ref_name_with_a_repository_names_the_image(storage, tmp_path):
    files = oci_layout_files(ref_name="example.com/team/app:2.0")

    [image] = import_image(storage, write_folder(tmp_path / "layout", files))

    assert (image.name, image.tag) == ("team/app", "2.0")


@pytest.fixture
def two_platform_layout(tmp_path):
    """An OCI layout folder with a linux/amd64 and linux/arm64 index."""
    files = two_platform_layout_files()
    return write_folder(tmp_path / "layout", files), files


def test_two_platform_index_is_tagged_at_the_index(storage, two_platform_layout):
    source, files = two_platform_layout

    [image] = import_image(storage, source, "multi:1")

    assert image.media_type == OCI_INDEX
    assert str(image.digest) == index_entry(files)["digest"]


def test_every_platform_manifest_and_blob_of_an_index_is_imported(
    storage, two_platform_layout
):
    source, files = two_platform_layout

    import_image(storage, source, "multi:1")

    index = json.loads(stored_manifest(storage, "multi", "1").body)
    children = [parse_digest(d["digest"]) for d in index["manifests"]]
    manifests = [storage.get_manifest("multi", child) for child in children]
    blobs = [blob for manifest in manifests for blob in manifest_blobs(manifest)]
    assert [manifest.media_type for manifest in manifests] == [OCI_MANIFEST] * 2
    assert all(storage.repository_has_blob("multi", blob) for blob in blobs)


def test_absent_platform_manifest_is_named_in_the_error(storage, tmp_path):
    files = two_platform_layout_files()
    index = json.loads(files[blob_path(index_entry(files))])
    del files[blob_path(index["manifests"][1])]

    with pytest.raises(ImageImportError, match="linux/arm64 manifest"):
        import_image(storage, write_folder(tmp_path / "layout", files), "multi:1")
    assert nothing_visible(storage)


# Damaged archives and bad names: an error, and nothing visible.


def truncated_docker_archive(tmp_path):
    """Return a docker save tarball cut in half."""
    path = tmp_path / "image.tar"
    write_tar(path, legacy_docker_files(BUSYBOX_LIKE))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def layer_not_matching_its_diff_id(tmp_path):
    """Return a tarball whose second layer is not what the config says."""
    files = legacy_docker_files(BUSYBOX_LIKE)
    [path] = [name for name, data in files.items() if data == LAYER_TWO]
    files[path] = make_layer("etc/greeting", b"tampered\n")
    return write_tar(tmp_path / "image.tar", files)


def corrupt_manifest_json(tmp_path):
    """Return a tarball whose manifest.json is cut short."""
    files = legacy_docker_files(BUSYBOX_LIKE)
    files["manifest.json"] = files["manifest.json"][:-5]
    return write_tar(tmp_path / "image.tar", files)


def missing_docker_layer(tmp_path):
    """Return a tarball without its second layer."""
    files = legacy_docker_files(BUSYBOX_LIKE)
    [path] = [name for name, data in files.items() if data == LAYER_TWO]
    del files[path]
    return write_tar(tmp_path / "image.tar", files)


def missing_oci_blob(tmp_path):
    """Return an OCI layout folder without its layer blob."""
    files = oci_layout_files()
    manifest = json.loads(files[blob_path(index_entry(files))])
    del files[blob_path(manifest["layers"][0])]
    return write_folder(tmp_path / "layout", files)


def oci_blob_not_matching_its_digest(tmp_path):
    """Return an OCI layout tar whose layer bytes were reversed."""
    files = oci_layout_files()
    manifest = json.loads(files[blob_path(index_entry(files))])
    path = blob_path(manifest["layers"][0])
    files[path] = bytes(reversed(files[path]))
    return write_tar(tmp_path / "layout.tar", files)


def not_an_archive(tmp_path):
    """Return a text file."""
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    return str(path)


DAMAGED = {
    "truncated tarball": (truncated_docker_archive, "truncated or damaged|has no"),
    "layer not matching its diff_id": (layer_not_matching_its_diff_id, "diff_id"),
    "corrupt manifest.json": (corrupt_manifest_json, "not valid JSON"),
    "missing docker layer": (missing_docker_layer, "has no"),
    "missing OCI blob": (missing_oci_blob, "does not hold"),
    "OCI blob not matching its digest": (oci_blob_not_matching_its_digest, "match"),
    "not an archive": (not_an_archive, "neither an image folder nor"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_archive_raises_and_leaves_nothing_visible(storage, tmp_path, case):
    make_source, message = DAMAGED[case]
    source = make_source(tmp_path)

    with pytest.raises(ImageImportError, match=message):
        import_image(storage, source, "hello:1")
    assert nothing_visible(storage)


def test_layer_not_matching_its_diff_id_never_enters_the_store(storage, tmp_path):
    source = layer_not_matching_its_diff_id(tmp_path)

    with pytest.raises(ImageImportError):
        import_image(storage, source)
    tampered = gzip.compress(make_layer("etc/greeting", b"tampered\n"), mtime=0)
    assert not storage.has_blob(parse_digest(sha256(tampered)))


@pytest.mark.parametrize("target", ["Foo/Bar:x", "hello:-bad", "a//b:1", "x@y:1"])
def test_bad_target_raises_and_leaves_nothing_visible(storage, docker_archive, target):
    with pytest.raises(ImageImportError, match="target"):
        import_image(storage, docker_archive, target)
    assert nothing_visible(storage)


def test_missing_source_is_a_clear_error(storage, tmp_path):
    with pytest.raises(ImageImportError, match="no such file or folder"):
        import_image(storage, str(tmp_path / "absent.tar"))


# Progress and logging.


def test_progress_bar_goes_to_stderr_only_when_asked(storage, docker_archive, capsys):
    import_image(storage, docker_archive, "quiet:1")
    quiet = capsys.readouterr()

    import_image(storage, docker_archive, "shown:1", progress=True)
    shown = capsys.readouterr()

    assert (quiet.out, shown.out) == ("", "")
    assert "Importing" not in quiet.err
    assert "Importing" in shown.err


def test_each_imported_image_is_logged(storage, docker_archive, caplog):
    caplog.set_level(logging.INFO, logger="app.events")

    [image] = import_image(storage, docker_archive)

    [record] = [r for r in caplog.records if getattr(r, "event", "") == "tag moved"]
    assert record.fields["repository"] == "busybox-like"
    assert record.fields["digest"] == str(image.digest)


# The command line.


@pytest.fixture
def cli_app(tmp_path):
    """An application with its storage and signing key under tmp_path."""
    return create_app(
        {
            "TESTING": True,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "key"),
        }
    )


def test_import_command_prints_the_imported_digest(cli_app, docker_archive):
    runner = cli_app.test_cli_runner()

    result = runner.invoke(args=["registry", "import", docker_archive, "hello:1"])

    digest = cli_app.extensions["registry_storage"].resolve_tag("hello", "1")
    assert result.exit_code == 0
    assert result.output == f"hello:1 {digest}\n"


def test_import_command_reports_a_broken_archive_in_one_line(cli_app, tmp_path):
    runner = cli_app.test_cli_runner()
    source = corrupt_manifest_json(tmp_path)

    result = runner.invoke(args=["registry", "import", source, "hello:1"])

    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "not valid JSON" in result.output


def test_an_import_moves_a_tag_that_exists_already(storage, docker_archive, oci_layout):
    [first] = import_image(storage, docker_archive, "moved:latest")
    [second] = import_image(storage, oci_layout[0], "moved:latest")

    assert first.digest != second.digest
    assert stored_manifest(storage, "moved", "latest").digest == second.digest


@pytest.mark.parametrize("target", ["../x:1", "./x:1", "../../etc/x:1", "./../x:1"])
def test_a_target_that_is_a_path_is_refused(storage, docker_archive, target):
    with pytest.raises(ImageImportError, match="repository name"):
        import_image(storage, docker_archive, target)
    assert storage.list_repositories() == []
