"""Export of a stored image to a ``docker load`` tarball or an OCI image layout.

- ``docker``: a tar with ``manifest.json`` naming the config and layers, which
  sit under ``blobs/sha256/<hex>`` as Docker 25 writes them. Layers go out as
  stored (gzip-compressed); ``docker load`` decompresses them. An index is
  exported as the one image of the asked platform.
- ``oci``: an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``) as a
  folder, or as a tar when the target ends in ``.tar``. Blobs go out byte for
  byte, and so do manifests of OCI types; an index goes with every child
  manifest. Manifests of Docker's types are rewritten with the OCI types (new
  digests), as ``skopeo copy`` does, since OCI tools skip other types.

Every blob is checked against its digest while it is copied, and the result is
written beside the target and renamed into place: a failed export leaves
nothing behind.
"""

import contextlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass

import click

from app.errors import RegistryError
from app.inventory import InventoryError, parse_image_reference, resolve
from app.reference import compute_digest, parse_digest
from app.storage import Manifest
from app.storage.errors import StorageError
from app.ui.image_config import text_or_none
from app.ui.inventory import declared_size, load_json
from app.v2.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

EXPORT_FORMATS = ("docker", "oci")
OCI_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
BLOCK_SIZE = 1024 * 1024
FILE_MODE = 0o644
FOLDER_MODE = 0o755
# Python's names for machines, as the OCI platform spec spells them.
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
# Configs docker load understands; anything else is an artifact, not an image.
IMAGE_CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})
OCI_TYPES_OF_DOCKER_TYPES = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_MANIFEST_LIST: OCI_INDEX,
    DOCKER_CONFIG: OCI_CONFIG,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": (
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ),
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    ),
}
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


class ImageExportError(Exception):
    """An image that cannot be exported; the message says why, in one line."""


@dataclass(frozen=True)
class ExportedImage:
    """What an export wrote: the reference, the manifest digest, the target."""

    reference: str
    digest: str
    target: str
    image_format: str


def export_image(
    storage, text, target, image_format="docker", platform_name=None, progress=False
):
    """Write ``NAME:TAG`` or ``NAME@DIGEST`` to ``target``; return an ExportedImage."""
    if image_format not in EXPORT_FORMATS:
        raise ImageExportError(f"unknown format {image_format!r}: docker or oci")
    try:
        reference = parse_image_reference(text)
        manifest = resolve(storage, reference)
    except InventoryError as error:
        raise ImageExportError(str(error)) from None
    if image_format == "docker":
        manifest = select_platform(storage, reference.name, manifest, platform_name)
        plan = docker_plan(storage, reference, manifest)
    else:
        plan = oci_plan(storage, reference, manifest)
    check_blobs(storage, plan.blobs, reference)

    as_folder = image_format == "oci" and not target.endswith(".tar")
    with progress_bar(progress, sum(size for _d, size in plan.blobs)) as advance:
        write_export(storage, plan, target, as_folder, advance)
    return ExportedImage(str(reference), plan.digest, target, image_format)


@dataclass(frozen=True)
class ExportPlan:
    """Small files to write, and blobs (digest, size) to copy under ``blobs/``."""

    documents: dict
    blobs: list
    digest: str


def docker_plan(storage, reference, manifest):
    """Plan a ``docker load`` tarball of one image manifest."""
    document = load_json(manifest.body)
    config = only_dicts([document.get("config")])
    config = config[0] if config else {}
    layers = only_dicts(document.get("layers"))
    if text_or_none(config.get("mediaType")) not in IMAGE_CONFIG_TYPES:
        raise ImageExportError(
            f"{reference} is not a container image (its config is"
            f" {config.get('mediaType')}); export it with --format oci"
        )
    blobs = [planned_blob(descriptor) for descriptor in [config, *layers]]
    entry = {
        "Config": blob_path(blobs[0][0]),
        "RepoTags": [f"{reference.name}:{reference.tag}"] if reference.tag else [],
        "Layers": [blob_path(digest) for digest, _size in blobs[1:]],
    }
    documents = {"manifest.json": json.dumps([entry]).encode()}
    return ExportPlan(documents, unique(blobs), str(manifest.digest))


def oci_plan(storage, reference, manifest):
    """Plan an OCI layout holding a manifest or index and all it references."""
    documents = {"oci-layout": json.dumps(OCI_LAYOUT_VERSION).encode()}
    blobs = []
    top = add_manifest(storage, reference.name, manifest, documents, blobs)
    descriptor = {
        "mediaType": top.media_type,
        "digest": str(top.digest),
        "size": len(top.body),
    }
    if reference.tag:
        descriptor["annotations"] = {REF_NAME_ANNOTATION: reference.tag}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    documents["index.json"] = json.dumps(index).encode()
    return ExportPlan(documents, unique(blobs), str(top.digest))


def add_manifest(storage, name, manifest, documents, blobs):
    """Add a manifest, in OCI terms, and all it references to a plan; return it.

    A manifest of OCI types goes out byte for byte. One of Docker's types is
    rewritten with the matching OCI types, as ``skopeo copy`` does, since OCI
    tools look only for OCI types in a layout; its config and layers stay as
    they are.
    """
    document = load_json(manifest.body)
    if manifest.media_type in INDEX_TYPES:
        children = []
        for child in only_dicts(document.get("manifests")):
            stored = child_manifest(storage, name, child)
            written = add_manifest(storage, name, stored, documents, blobs)
            children.append(replace_descriptor(child, written))
        document["manifests"] = children
    else:
        parts = only_dicts(
            [document.get("config"), *only_dicts(document.get("layers"))]
        )
        blobs.extend(planned_blob(descriptor) for descriptor in parts)
    if manifest.media_type in OCI_TYPES_OF_DOCKER_TYPES or manifest_changed(
        manifest, document
    ):
        manifest = to_oci_manifest(document, manifest.media_type)
    documents[blob_path(str(manifest.digest))] = manifest.body
    return manifest


def manifest_changed(manifest, document):
    """Tell whether an index's children were rewritten, changing the index."""
    return manifest.media_type in INDEX_TYPES and document != load_json(manifest.body)


def to_oci_manifest(document, media_type):
    """Return a Manifest of the document with Docker's media types made OCI's."""
    document["mediaType"] = oci_type(media_type)
    layers = only_dicts(document.get("layers"))
    for descriptor in only_dicts([document.get("config"), *layers]):
        if "mediaType" in descriptor:
            descriptor["mediaType"] = oci_type(descriptor["mediaType"])
    body = json.dumps(document, indent=3).encode()
    return Manifest(body, document["mediaType"], compute_digest(body))


def only_dicts(items):
    """Return the objects of a list from a stored manifest; [] for no list."""
    return (
        [item for item in items if isinstance(item, dict)]
        if isinstance(items, list)
        else []
    )


def planned_blob(descriptor):
    """Return a descriptor's (digest, size); a size that is no byte count is 0."""
    digest = descriptor.get("digest")
    return (digest if isinstance(digest, str) else "", declared_size(descriptor) or 0)


def oci_type(media_type):
    """Return the OCI media type for one of Docker's, or the type itself."""
    if not isinstance(media_type, str):
        return media_type
    return OCI_TYPES_OF_DOCKER_TYPES.get(media_type, media_type)


def replace_descriptor(descriptor, manifest):
    """Return an index entry pointing at ``manifest`` instead, keeping the rest."""
    entry = dict(descriptor)
    entry["mediaType"] = manifest.media_type
    entry["digest"] = str(manifest.digest)
    entry["size"] = len(manifest.body)
    return entry


def child_manifest(storage, name, descriptor):
    """Return a child manifest an index lists, or say which one is missing."""
    try:
        return storage.get_manifest(name, parse_digest(planned_blob(descriptor)[0]))
    except (StorageError, RegistryError) as error:
        digest = descriptor.get("digest")
        raise ImageExportError(
            f"manifest {digest} listed by the index is not in {name} ({error})"
        ) from None


def select_platform(storage, name, manifest, platform_name):
    """Return the image manifest for ``platform_name`` (``os/arch[/variant]``)."""
    if manifest.media_type not in INDEX_TYPES:
        return manifest
    wanted = platform_name or host_platform()
    entries = only_dicts(load_json(manifest.body).get("manifests"))
    for entry in entries:
        if platform_text(entry.get("platform")) == wanted:
            return child_manifest(storage, name, entry)
    offered = ", ".join(platform_text(e.get("platform")) for e in entries)
    raise ImageExportError(
        f"the index has no image for {wanted} (it has: {offered}); use --platform"
    )


def platform_text(platform_fields):
    """Return ``os/architecture[/variant]`` of an OCI platform object."""
    if not isinstance(platform_fields, dict):
        platform_fields = {}
    parts = [platform_fields.get(key) for key in ("os", "architecture", "variant")]
    parts = [part if isinstance(part, str) else "?" for part in parts]
    return "/".join(parts if platform_fields.get("variant") else parts[:2])


def host_platform():
    """Return this machine's platform, as docker would pick it from an index."""
    machine = platform.machine()
    return f"linux/{ARCHITECTURES.get(machine, machine)}"


def blob_path(digest):
    """Return where a blob lives in a layout: ``blobs/<algorithm>/<hex>``."""
    algorithm, _, hex_digest = digest.partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


def unique(blobs):
    """Return (digest, size) pairs without repeats, in first-seen order."""
    return list(dict.fromkeys(blobs))


def check_blobs(storage, blobs, reference):
    """Raise ImageExportError unless every blob is a valid, stored digest."""
    for digest, _size in blobs:
        try:
            stored = storage.has_blob(parse_digest(digest))
        except RegistryError:
            stored = False
        if not stored:
            message = f"blob {digest!r} of {reference} is not in the store"
            raise ImageExportError(message)


# Writing: a folder or a tar, first under a temporary name beside the target.


def write_export(storage, plan, target, as_folder, advance):
    """Write the plan to ``target`` atomically, as a folder or a tar."""
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise ImageExportError(f"cannot export to {target}: no folder {parent}")
    if as_folder and os.path.exists(target):
        raise ImageExportError(f"{target} already exists; name a new folder")
    if not as_folder and os.path.isdir(target):
        raise ImageExportError(f"{target} is a folder; name a file")
    writer_class = FolderWriter if as_folder else TarWriter
    try:
        with writer_class(target) as writer:
            for path, data in plan.documents.items():
                writer.add(path, io.BytesIO(data), len(data))
            for digest, _size in plan.blobs:
                parsed = parse_digest(digest)
                with storage.open_blob(parsed) as blob:
                    size = storage.blob_size(parsed)
                    checked = CheckedReader(blob, parsed, advance)
                    writer.add(blob_path(digest), checked, size)
                    checked.verify()
    except OSError as error:
        raise ImageExportError(f"cannot export to {target}: {error}") from None


class CheckedReader:
    """Reads a blob, hashing it; ``verify`` raises if it does not match its digest."""

    def __init__(self, blob, digest, advance):
        self.blob = blob
        self.digest = digest
        self.hasher = digest.hasher()
        self.advance = advance

    def read(self, size=-1):
        block = self.blob.read(size)
        self.hasher.update(block)
        self.advance(len(block))
        return block

    def verify(self):
        if self.hasher.hexdigest() != self.digest.hex:
            raise ImageExportError(f"stored blob {self.digest} is damaged")


class TarWriter:
    """Writes entries to a tar beside ``target``, renamed into place on success."""

    def __init__(self, target):
        self.target = target
        self.folders = set()

    def __enter__(self):
        parent = os.path.dirname(os.path.abspath(self.target))
        handle, self.temporary = tempfile.mkstemp(dir=parent, prefix=".export-")
        self.file = os.fdopen(handle, "wb")
        self.tar = tarfile.open(fileobj=self.file, mode="w", format=tarfile.PAX_FORMAT)
        return self

    def add(self, path, stream, size):
        self.add_folders(os.path.dirname(path))
        info = tarfile.TarInfo(path)
        info.size, info.mode = size, FILE_MODE
        self.tar.addfile(info, stream)

    def add_folders(self, folder):
        if not folder or folder in self.folders:
            return
        self.add_folders(os.path.dirname(folder))
        info = tarfile.TarInfo(folder)
        info.type, info.mode = tarfile.DIRTYPE, FOLDER_MODE
        self.tar.addfile(info)
        self.folders.add(folder)

    def __exit__(self, kind, _error, _traceback):
        try:
            self.tar.close()
            self.file.close()
            if kind is None:
                os.chmod(self.temporary, FILE_MODE)
                os.replace(self.temporary, self.target)
        finally:
            if os.path.exists(self.temporary):
                os.unlink(self.temporary)


class FolderWriter:
    """Writes files into a folder beside ``target``, renamed into place on success."""

    def __init__(self, target):
        self.target = target

    def __enter__(self):
        parent = os.path.dirname(os.path.abspath(self.target))
        self.temporary = tempfile.mkdtemp(dir=parent, prefix=".export-")
        return self

    def add(self, path, stream, _size):
        destination = os.path.join(self.temporary, *path.split("/"))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with open(destination, "wb") as file:
            shutil.copyfileobj(stream, file, BLOCK_SIZE)

    def __exit__(self, kind, _error, _traceback):
        if kind is None:
            os.chmod(self.temporary, FOLDER_MODE)
            os.rename(self.temporary, self.target)
        else:
            shutil.rmtree(self.temporary, ignore_errors=True)


@contextlib.contextmanager
def progress_bar(enabled, total):
    """Yield a callable advancing a bar on stderr by a count of bytes, if enabled."""
    if not enabled:
        yield lambda _count: None
        return
    bar = click.progressbar(length=max(total, 1), label="Exporting", file=sys.stderr)
    with bar:
        yield bar.update
