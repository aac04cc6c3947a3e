"""OCI image layout: index.json names manifests; blobs/<algorithm>/<hex> holds all.

A layout comes as a folder or a tar (``oci:`` and ``oci-archive:`` in skopeo).
Every manifest a chosen index.json entry reaches, children of an index
included, is read and checked against its descriptor before any blob is stored;
blobs and manifests are then stored as they are, byte for byte.
"""

from dataclasses import dataclass, field

from app.documents import parse_document
from app.images.errors import ImageImportError
from app.images.progress import progress_bar
from app.images.publishing import StoredImage, parse_archive_manifest, publish
from app.images.references import Reference, check_tag, parse_reference, select_images
from app.images.sources import archive_digest, load_json, read_document
from app.reference import compute_digest
from app.storage.errors import DigestMismatch, SizeMismatch
from app.v2.manifests import INDEX_TYPES

OCI_LAYOUT_FILE = "oci-layout"
OCI_INDEX_FILE = "index.json"
OCI_LAYOUT_MAJOR_VERSION = "1."
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"


@dataclass(frozen=True)
class _IndexEntry:
    """A descriptor of index.json with the names its annotations give."""

    descriptor: dict
    references: tuple
    label: str


@dataclass
class _Tree:
    """What one index.json entry reaches: manifests (children first) and blobs."""

    manifests: dict = field(default_factory=dict)  # Digest -> (body, content)
    blobs: dict = field(default_factory=dict)  # Digest -> size


def import_oci_layout(storage, archive, wanted, progress):
    """Import what an OCI layout's index.json names, every byte as it is."""
    _check_layout_version(archive)
    selected = select_images(_read_index_entries(archive), wanted)
    trees = [(_read_tree(archive, entry.descriptor), refs) for entry, refs in selected]
    blobs = {digest: size for tree, _ in trees for digest, size in tree.blobs.items()}

    with progress_bar(progress, sum(blobs.values())) as advance:
        for digest, size in blobs.items():
            _store_layout_blob(storage, archive, digest, size, advance)
    images = [_stored_tree(tree, references) for tree, references in trees]
    return publish(storage, images)


def _check_layout_version(archive):
    """Raise unless oci-layout declares a layout version this import reads."""
    layout = load_json(read_document(archive, OCI_LAYOUT_FILE), OCI_LAYOUT_FILE)
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if not isinstance(version, str) or not version.startswith(OCI_LAYOUT_MAJOR_VERSION):
        raise ImageImportError(
            f"oci-layout: unsupported imageLayoutVersion {version!r}"
        )


def _read_index_entries(archive):
    """Return the entries of index.json, with the names they are annotated with."""
    index = load_json(read_document(archive, OCI_INDEX_FILE), OCI_INDEX_FILE)
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list):
        raise ImageImportError("index.json has no list of manifests")
    return [_index_entry(descriptor) for descriptor in descriptors]


def _index_entry(descriptor):
    """Return an index.json descriptor with the reference its annotations name."""
    if not isinstance(descriptor, dict):
        raise ImageImportError("index.json lists a malformed descriptor")
    annotations = descriptor.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    ref_name = annotations.get(REF_NAME_ANNOTATION)
    if not isinstance(ref_name, str) or not ref_name:
        label = f"the untagged manifest {descriptor.get('digest')}"
        return _IndexEntry(descriptor, (), label)
    image_name = annotations.get(IMAGE_NAME_ANNOTATION)
    reference = _ref_name_reference(ref_name, image_name)
    return _IndexEntry(descriptor, (reference,), ref_name)


def _ref_name_reference(ref_name, image_name):
    """Return the reference a ref.name gives: a full one, or a tag only."""
    origin = f"index.json {REF_NAME_ANNOTATION}"
    if "/" in ref_name or ":" in ref_name:
        return parse_reference(ref_name, origin)
    tag = check_tag(ref_name, origin)
    if not isinstance(image_name, str):
        return Reference(None, tag)
    origin = f"index.json {IMAGE_NAME_ANNOTATION}"
    return Reference(parse_reference(image_name, origin).name, tag)


def _read_tree(archive, descriptor):
    """Return every manifest and blob an index.json descriptor reaches, checked."""
    tree = _Tree()
    _add_manifest(archive, descriptor, tree, OCI_INDEX_FILE)
    return tree


def _add_manifest(archive, descriptor, tree, parent):
    """Add the manifest a descriptor names, and all it references, to ``tree``."""
    digest, size = _descriptor(descriptor, parent)
    if digest in tree.manifests:
        return
    body = _read_layout_manifest(archive, descriptor, digest, size, parent)
    content = parse_archive_manifest(body, descriptor.get("mediaType"), digest)
    document = parse_document(body)

    if content.media_type in INDEX_TYPES:
        for child in document["manifests"]:
            _add_manifest(archive, child, tree, f"index {digest}")
    else:
        for blob in (document["config"], *document["layers"]):
            _add_blob(archive, blob, tree, f"manifest {digest}")
    tree.manifests[digest] = (body, content)


def _descriptor(descriptor, parent):
    """Return the digest and size of a descriptor that ``parent`` lists."""
    if not isinstance(descriptor, dict):
        raise ImageImportError(f"{parent} lists a malformed descriptor")
    digest = archive_digest(descriptor.get("digest"), f"{parent} descriptor")
    size = descriptor.get("size")
    if type(size) is not int or size < 0:
        raise ImageImportError(f"{parent}: descriptor {digest} has no valid size")
    return digest, size


def _blob_path(digest):
    """Return where an OCI layout keeps the blob with this digest."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _read_layout_manifest(archive, descriptor, digest, size, parent):
    """Return a manifest's bytes from the layout, checked against its descriptor."""
    path = _blob_path(digest)
    if not archive.exists(path):
        raise ImageImportError(_absent_manifest_message(descriptor, digest, parent))
    body = read_document(archive, path)
    if len(body) != size or compute_digest(body, digest.algorithm) != digest:
        raise ImageImportError(f"manifest {digest} in the layout does not match it")
    return body


def _absent_manifest_message(descriptor, digest, parent):
    """Say that the layout lacks a manifest, and for an index's child, which one."""
    if parent == OCI_INDEX_FILE:
        return f"index.json names manifest {digest}, which the layout does not hold"
    platform = _platform_text(descriptor.get("platform"))
    return (
        f"{parent} lists the {platform} manifest {digest}, which the layout does"
        " not hold: copy every platform (skopeo copy --all) or a single one"
    )


def _platform_text(platform):
    """Return ``os/architecture[/variant]`` of a descriptor's platform."""
    if not isinstance(platform, dict):
        return "unnamed platform's"
    parts = [platform.get(key) for key in ("os", "architecture", "variant")]
    return "/".join(str(part) for part in parts if part) or "unnamed platform's"


def _add_blob(archive, descriptor, tree, parent):
    """Add a config or layer to ``tree`` once the layout holds it at its size."""
    digest, size = _descriptor(descriptor, parent)
    path = _blob_path(digest)
    if not archive.exists(path):
        raise ImageImportError(
            f"{parent} references blob {digest}, which the layout does not hold"
        )
    actual = archive.size(path)
    if actual != size:
        raise ImageImportError(
            f"blob {digest} in the layout is {actual} bytes, {parent} says {size}"
        )
    tree.blobs[digest] = size


def _store_layout_blob(storage, archive, digest, size, advance):
    """Stream a layout's blob into storage, verified against digest and size."""
    with archive.open(_blob_path(digest)) as stream:
        try:
            storage.write_blob(stream, digest, size, progress=advance)
        except (DigestMismatch, SizeMismatch):
            message = f"blob {digest} in the layout does not match its digest"
            raise ImageImportError(message) from None


def _stored_tree(tree, references):
    """Return a tree whose blobs are stored, ready to be published."""
    manifests = tuple(
        (body, content, digest) for digest, (body, content) in tree.manifests.items()
    )
    return StoredImage(tuple(tree.blobs), manifests, references)
