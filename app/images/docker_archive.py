"""docker save: manifest.json lists each image's config and layer tars.

Each layer is checked against its diff_id in the config while it streams into
storage: a plain tar compressed with gzip, deterministically, a gzip one as it
is; zstd layers are refused. The config is stored byte for byte and the image
gets a Docker v2 schema 2 manifest.
"""

import json
import zlib
from dataclasses import dataclass

from app.images.errors import ImageImportError
from app.images.progress import BLOCK_SIZE, progress_bar, read_blocks
from app.images.publishing import StoredImage, parse_archive_manifest, publish
from app.images.references import parse_reference, select_images
from app.images.sources import (
    archive_digest,
    check_named_content,
    load_json,
    member_path,
    read_document,
)
from app.reference import compute_digest
from app.v2.manifests import DOCKER_MANIFEST, SCHEMA_VERSION

DOCKER_ARCHIVE_MANIFEST = "manifest.json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# zlib with a gzip wrapper writes mtime 0 and no file name: the same layer always
# compresses to the same bytes with the same zlib.
GZIP_LEVEL = 6
GZIP_WINDOW_BITS = 16 + zlib.MAX_WBITS
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class _DockerImage:
    """One entry of a docker-save manifest.json, with its config read."""

    config: bytes
    layers: tuple
    diff_ids: tuple
    references: tuple
    label: str


def import_docker_archive(storage, archive, wanted, progress):
    """Import the images a docker-save tarball lists, layers gzip-compressed."""
    selected = select_images(_read_docker_images(archive), wanted)
    layers = _unique_layers(image for image, _references in selected)
    total = sum(archive.size(path) for path in layers)

    with progress_bar(progress, total) as advance:
        stored = {
            path: _store_layer(storage, archive, path, diff_id, advance)
            for path, diff_id in layers.items()
        }
    images = [
        _store_docker_image(storage, image, references, stored)
        for image, references in selected
    ]
    return publish(storage, images)


def _read_docker_images(archive):
    """Return the images manifest.json lists, each config read and checked."""
    data = read_document(archive, DOCKER_ARCHIVE_MANIFEST)
    entries = load_json(data, DOCKER_ARCHIVE_MANIFEST)
    if not isinstance(entries, list):
        raise ImageImportError("manifest.json is not a list of images")
    return [_read_docker_image(archive, entry) for entry in entries]


def _read_docker_image(archive, entry):
    """Return one manifest.json entry with its config, diff_ids and RepoTags."""
    config_path = member_path(_entry_field(entry, "Config", str))
    layers = tuple(member_path(path) for path in _entry_strings(entry, "Layers"))
    config = read_document(archive, config_path)
    check_named_content(config_path, config)
    diff_ids = _diff_ids(config, config_path, len(layers))

    origin = "manifest.json RepoTags"
    references = tuple(
        parse_reference(text, origin)
        for text in _entry_strings(entry, "RepoTags", required=False)
    )
    label = " ".join(map(str, references)) or f"image {compute_digest(config)}"
    return _DockerImage(config, layers, diff_ids, references, label)


def _entry_field(entry, key, kind):
    """Return ``entry[key]`` of a manifest.json image, checked to be a ``kind``."""
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, kind):
        raise ImageImportError(f"manifest.json: an image has no valid {key!r}")
    return value


def _entry_strings(entry, key, required=True):
    """Return a manifest.json image's list of strings; null if not ``required``."""
    if not required and isinstance(entry, dict) and entry.get(key) is None:
        return []
    values = _entry_field(entry, key, list)
    if not all(isinstance(value, str) for value in values):
        raise ImageImportError(f"manifest.json: an image has no valid {key!r}")
    return values


def _diff_ids(config, path, count):
    """Return the config's rootfs.diff_ids, one per layer of manifest.json."""
    document = load_json(config, path)
    rootfs = document.get("rootfs") if isinstance(document, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageImportError(f"{path}: the image config has no rootfs.diff_ids")
    if len(diff_ids) != count:
        raise ImageImportError(
            f"{path}: the image config lists {len(diff_ids)} layers,"
            f" manifest.json {count}"
        )
    return tuple(archive_digest(text, f"{path} rootfs.diff_ids") for text in diff_ids)


def _unique_layers(images):
    """Return each layer path the images use, once, with its diff_id."""
    layers = {}
    for image in images:
        layers.update(zip(image.layers, image.diff_ids, strict=True))
    return layers


def _store_layer(storage, archive, path, diff_id, advance):
    """Store a layer gzip-compressed (a gzip one as it is); return its descriptor."""
    with archive.open(path) as stream:
        head = stream.peek(len(ZSTD_MAGIC))[: len(ZSTD_MAGIC)]
        if head.startswith(ZSTD_MAGIC):
            raise ImageImportError(
                f"layer {path} is zstd-compressed; plain and gzip layers only"
            )
        if head.startswith(GZIP_MAGIC):
            blocks = _passed_through(stream, diff_id, path, advance)
        else:
            blocks = _compressed(stream, diff_id, path, advance)
        digest = storage.write_blob(blocks)
    size = storage.blob_size(digest)
    return {"mediaType": DOCKER_LAYER, "size": size, "digest": str(digest)}


def _compressed(stream, diff_id, path, advance):
    """Yield a plain layer gzip-compressed; fail at its end if not its diff_id."""
    hasher = diff_id.hasher()
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WINDOW_BITS)
    for block in read_blocks(stream, advance):
        hasher.update(block)
        yield compressor.compress(block)
    yield compressor.flush()
    # Raised inside write_blob, this keeps the blob out of the store.
    _check_diff_id(hasher, diff_id, path)


def _passed_through(stream, diff_id, path, advance):
    """Yield a gzip layer as it is; fail at its end unless it inflates to diff_id."""
    hasher = diff_id.hasher()
    decompressor = zlib.decompressobj(GZIP_WINDOW_BITS)
    for block in read_blocks(stream, advance):
        _inflate(decompressor, block, hasher)
        yield block
    if not decompressor.eof or decompressor.unused_data:
        raise ImageImportError(f"layer {path} is not one complete gzip stream")
    _check_diff_id(hasher, diff_id, path)


def _inflate(decompressor, data, hasher):
    """Hash what ``data`` inflates to, holding one bounded block at a time."""
    while data:
        hasher.update(decompressor.decompress(data, BLOCK_SIZE))
        data = decompressor.unconsumed_tail


def _check_diff_id(hasher, diff_id, path):
    """Raise unless an uncompressed layer hashed to its diff_id."""
    if hasher.hexdigest() != diff_id.hex:
        raise ImageImportError(
            f"layer {path} does not match its diff_id {diff_id} in the image config"
        )


def _store_docker_image(storage, image, references, stored_layers):
    """Store an image's config and build its schema 2 manifest, not yet put."""
    config_digest = storage.write_blob([image.config])
    layers = [stored_layers[path] for path in image.layers]
    body = _docker_manifest(config_digest, len(image.config), layers)
    digest = compute_digest(body)
    content = parse_archive_manifest(body, DOCKER_MANIFEST, digest)
    blobs = tuple(dict.fromkeys(content.blobs))
    return StoredImage(blobs, ((body, content, digest),), references)


def _docker_manifest(config_digest, config_size, layers):
    """Return the bytes of a Docker v2 schema 2 manifest."""
    config = {
        "mediaType": DOCKER_CONFIG,
        "size": config_size,
        "digest": str(config_digest),
    }
    document = {
        "schemaVersion": SCHEMA_VERSION,
        "mediaType": DOCKER_MANIFEST,
        "config": config,
        "layers": layers,
    }
    return json.dumps(document, indent=3).encode()
