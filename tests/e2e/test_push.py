"""docker push and pull, and skopeo copy --all, through the real server."""

import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKERFILE, GREETING, Image, static_busybox

# A first layer unique to the run: no layer of the image exists anywhere yet,
# so the push uploads and the pull downloads every one of them.
LAYERED_DOCKERFILE = DOCKERFILE.replace(
    "FROM scratch\n", "FROM scratch\nCOPY nonce.txt /nonce.txt\n"
)
UPLOAD_START = "POST /v2/e2e/layers/blobs/uploads/"
OCI_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLATFORMS = ("amd64", "arm64")
# One layer per COPY of LAYERED_DOCKERFILE.
LAYERS = 3


@pytest.fixture(scope="module")
def layered_image(dockerd, tmp_path_factory):
    """Build a three-layer image, new to this run, whose command prints a line."""
    nonce = secrets.token_hex(8)
    context = tmp_path_factory.mktemp("layered")
    shutil.copy(static_busybox(), context / "busybox")
    (context / "nonce.txt").write_text(nonce + "\n")
    (context / "greeting.txt").write_text(GREETING + "\n")
    (context / "Dockerfile").write_text(LAYERED_DOCKERFILE)
    name = f"e2e-layers-{nonce}:v1"
    dockerd.run("build", "--quiet", "--tag", name, str(context))
    return Image(name, GREETING)


@pytest.fixture(scope="module")
def pushed(registry_server, dockerd, layered_image):
    """Tag the layered image for the registry, push it once; return the output."""
    reference = f"{registry_server.host}/e2e/layers:v1"
    dockerd.run("tag", layered_image.name, reference)
    return reference, dockerd.run("push", reference)


def layer_count(dockerd, reference):
    """How many layers an image in the daemon has."""
    return int(
        dockerd.run("image", "inspect", "--format", "{{len .RootFS.Layers}}", reference)
    )


def progress_lines(output, status):
    """The lines of docker's push or pull output that end with ``: status``."""
    return [line for line in output.splitlines() if line.endswith(f": {status}")]


def layer_and_config_files(storage_root, manifest_digest):
    """Map each blob but the manifest to its inode: a new upload would replace it.

    docker puts the manifest again on every push, so that one file is left out.
    """
    blobs = storage_root / "blobs"
    files = (path for path in blobs.rglob("*") if path.is_file())
    return {path: path.stat().st_ino for path in files if path.name != manifest_digest}


def pushed_digest(output):
    """The hex of the manifest digest that docker push reports."""
    match = re.search(r"digest: sha256:([0-9a-f]{64})", output)
    assert match, output
    return match[1]


def test_first_push_uploads_every_layer(dockerd, pushed):
    reference, output = pushed

    assert layer_count(dockerd, reference) == LAYERS
    assert len(progress_lines(output, "Pushed")) == LAYERS


def settled_size(log, quiet=0.5, limit=30):
    """Return the log's size once it has stopped growing for ``quiet`` seconds.

    Each worker writes its access log lines from a thread of its own, after a
    pause, so the lines of a push that has just ended may still be coming.
    """
    deadline = time.monotonic() + limit
    size = log.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(quiet)
        size, before = log.stat().st_size, size
        if size == before:
            return size
    raise AssertionError(f"{log} kept growing for {limit} s")


def test_second_push_uploads_nothing(registry_server, dockerd, pushed):
    reference, first_output = pushed
    manifest = pushed_digest(first_output)
    blobs_before = layer_and_config_files(registry_server.storage_root, manifest)
    log_offset = settled_size(registry_server.log)

    output = dockerd.run("push", reference)

    assert len(progress_lines(output, "Layer already exists")) == LAYERS
    assert progress_lines(output, "Pushed") == []
    with open(registry_server.log, "rb") as log:
        log.seek(log_offset)
        assert UPLOAD_START.encode() not in log.read()
    blobs_after = layer_and_config_files(registry_server.storage_root, manifest)
    assert blobs_after == blobs_before


def test_pull_into_a_daemon_without_the_image_downloads_and_runs_it(
    dockerd, layered_image, pushed
):
    reference, _output = pushed
    dockerd.run("rmi", reference, layered_image.name)

    output = dockerd.run("pull", reference)

    assert len(progress_lines(output, "Pull complete")) == LAYERS
    assert progress_lines(output, "Already exists") == []
    printed = dockerd.run("run", "--rm", "--network", "none", reference)
    assert printed.strip() == layered_image.line


# skopeo copy --all of a two-platform OCI index.


class Layout:
    """An OCI image layout being written: blobs by digest, then index.json."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True)
        (self.root / "oci-layout").write_text(json.dumps(OCI_LAYOUT_VERSION))

    def add_blob(self, media_type, data, **fields):
        """Store data under its digest and return a descriptor of it."""
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {
            "mediaType": media_type,
            "digest": f"sha256:{digest}",
            "size": len(data),
            **fields,
        }

    def add_json(self, media_type, document, **fields):
        """Store a JSON document as a blob and return a descriptor of it."""
        return self.add_blob(media_type, json.dumps(document).encode(), **fields)

    def finish(self, tag, descriptor):
        """Write index.json naming ``descriptor`` under ``tag``."""
        annotated = {
            **descriptor,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
        index = {"schemaVersion": 2, "manifests": [annotated]}
        (self.root / "index.json").write_text(json.dumps(index))


def one_file_tar(name, content):
    """An uncompressed tar holding one file, byte for byte reproducible."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo(name)
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    return archive.getvalue()


def platform_manifest(layout, architecture):
    """Store a one-layer image for linux/architecture; return its descriptor."""
    tar = one_file_tar("platform.txt", f"built for {architecture}\n".encode())
    layer = layout.add_blob(OCI_LAYER, gzip.compress(tar, mtime=0))
    diff_id = hashlib.sha256(tar)
    config = layout.add_json(
        OCI_CONFIG,
        {
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id.hexdigest()}"]},
        },
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    }
    platform = {"architecture": architecture, "os": "linux"}
    return layout.add_json(OCI_MANIFEST, manifest, platform=platform)


def two_platform_layout(root, tag):
    """Write an OCI layout whose ``tag`` is an index of two platform images."""
    layout = Layout(root)
    children = [platform_manifest(layout, arch) for arch in PLATFORMS]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    descriptor = layout.add_json(OCI_INDEX, index)
    layout.finish(tag, descriptor)
    return descriptor


def layout_digests(root):
    """The digest index.json names and the digests of the manifests it lists."""
    [entry] = json.loads((Path(root) / "index.json").read_text())["manifests"]
    blob = Path(root) / "blobs" / entry["digest"].replace(":", os.sep)
    children = json.loads(blob.read_text())["manifests"]
    return entry["digest"], [child["digest"] for child in children]


def test_skopeo_copies_a_two_platform_index_in_and_out_unchanged(
    registry_server, skopeo, tmp_path
):
    two_platform_layout(tmp_path / "source", "v1")
    remote = f"docker://{registry_server.host}/e2e/multi:v1"

    skopeo(
        "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
        f"oci:{tmp_path / 'source'}:v1", remote,
    )  # fmt: skip
    skopeo(
        "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        remote, f"oci:{tmp_path / 'copy'}:v1",
    )  # fmt: skip

    source = layout_digests(tmp_path / "source")
    assert layout_digests(tmp_path / "copy") == source
    assert len(source[1]) == len(PLATFORMS)
