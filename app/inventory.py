"""What the store holds, for the command line and ``flask shell``: list, inspect,
remove and measure repositories, tags and manifests.

Sizes are those of the blobs themselves (the manifest, its config and its
layers, and for an index every child manifest with its blobs); a blob that two
images share is counted once per repository and once in the store's total.
Repository sizes and usage are measured by the same functions as the web UI's
pages, so both always agree.
"""

from dataclasses import asdict, dataclass

from app.documents import DocumentError, parse_document
from app.errors import RegistryError
from app.events import record_event
from app.reference import Digest, parse_digest, validate_name, validate_tag
from app.storage.errors import StorageError
from app.ui.image_config import summarize_image_config, text_or_none
from app.ui.inventory import (
    config_descriptor,
    declared_size,
    descriptors,
    human_size,
    load_json,
    repository_blobs,
    short_digest,
    total_size,
)
from app.ui.usage import measure_usage
from app.v2.manifests import INDEX_TYPES, remove_manifest

USAGE_COLUMNS = ("size", "shared", "unique")


class InventoryError(Exception):
    """A reference or request that cannot be answered; the message says why."""


@dataclass(frozen=True)
class ImageReference:
    """``NAME:TAG`` or ``NAME@DIGEST``: exactly one of tag and digest is set."""

    name: str
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self):
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class RepositorySummary:
    name: str
    tags: int
    manifests: int
    size: int


@dataclass(frozen=True)
class TagSummary:
    tag: str
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class DiskUsage:
    """Bytes in the store, per repository (shared and own), and those unused."""

    total: int
    blobs: int
    repositories: list
    unreferenced: int
    unreferenced_blobs: int


def parse_image_reference(text, require_tag_or_digest=True):
    """Return the ImageReference ``NAME:TAG`` or ``NAME@DIGEST`` spells."""
    name, at, digest = text.partition("@")
    tag = None
    if not at:
        head, colon, tail = text.rpartition(":")
        if colon and "/" not in tail:
            name, tag = head, tail
        elif require_tag_or_digest:
            raise InventoryError(f"{text!r}: give NAME:TAG or NAME@DIGEST")
    try:
        name = validate_name(name)
        if tag is not None:
            tag = validate_tag(tag)
        parsed = parse_digest(digest) if at else None
    except RegistryError as error:
        raise InventoryError(f"{text!r}: {error.message}") from None
    return ImageReference(name, tag, parsed)


def resolve(storage, reference):
    """Return the Manifest a reference names, or InventoryError if none."""
    try:
        digest = reference.digest or storage.resolve_tag(reference.name, reference.tag)
        return storage.get_manifest(reference.name, digest)
    except StorageError:
        raise InventoryError(f"{reference} is not in the registry") from None


def manifest_blobs(storage, name, manifest):
    """Return {digest: size} of a manifest and everything it references.

    Sizes are those of the stored blobs, as the web UI counts them, whatever
    the manifest declares; a blob the store lacks counts 0.
    """
    document = load_json(manifest.body)
    blobs = {str(manifest.digest): len(manifest.body)}
    if manifest.media_type in INDEX_TYPES:
        for child in descriptors(document, "manifests"):
            try:
                stored = storage.get_manifest(name, child["digest"])
            except StorageError:
                continue  # an index may list platforms it was pushed without
            blobs.update(manifest_blobs(storage, name, stored))
        return blobs
    for descriptor in config_descriptor(document) + descriptors(document, "layers"):
        blobs[str(descriptor["digest"])] = total_size(storage, [descriptor["digest"]])
    return blobs


def list_repositories(storage):
    """Return a RepositorySummary for every repository, by name."""
    summaries = []
    for name in storage.list_repositories():
        summaries.append(
            RepositorySummary(
                name,
                len(storage.list_tags(name)),
                len(storage.list_manifests(name)),
                total_size(storage, repository_blobs(storage, name)),
            )
        )
    return summaries


def list_tags(storage, name):
    """Return a TagSummary for every tag of a repository, by tag."""
    reference = parse_image_reference(name, require_tag_or_digest=False)
    try:
        tags = storage.list_tags(reference.name)
    except StorageError:
        raise InventoryError(f"no repository named {reference.name}") from None
    summaries = []
    for tag in tags:
        try:
            manifest = resolve(storage, ImageReference(reference.name, tag))
        except InventoryError:
            continue  # removed since the listing
        size = sum(manifest_blobs(storage, reference.name, manifest).values())
        summaries.append(
            TagSummary(tag, str(manifest.digest), manifest.media_type, size)
        )
    return summaries


def inspect_image(storage, text):
    """Return what ``NAME:TAG`` or ``NAME@DIGEST`` is: manifest, config, layers."""
    reference = parse_image_reference(text)
    manifest = resolve(storage, reference)
    document = load_json(manifest.body)
    blobs = manifest_blobs(storage, reference.name, manifest)
    details = {
        "name": reference.name,
        "digest": str(manifest.digest),
        "media_type": manifest.media_type,
        "size": sum(blobs.values()),
        "tags": storage.find_tags(reference.name, manifest.digest),
    }
    if manifest.media_type in INDEX_TYPES:
        details["manifests"] = [
            {**described(entry), "platform": platform_of(entry)}
            for entry in descriptors(document, "manifests")
        ]
    else:
        details["config"] = image_config(storage, document)
        details["layers"] = [
            described(layer) for layer in descriptors(document, "layers")
        ]
    return details


def described(descriptor):
    """Return a descriptor's digest, media type and size; None for a bad one."""
    return {
        "digest": str(descriptor["digest"]),
        "media_type": text_or_none(descriptor.get("mediaType")),
        "size": declared_size(descriptor),
    }


def platform_of(entry):
    """Return an index entry's platform object, or None if it has none.

    The object is quoted from the index as it stands, OCI field names and all.
    """
    platform = entry.get("platform")
    return platform if isinstance(platform, dict) else None


def image_config(storage, document):
    """Return the parts of an image config a person looks for, if it is one."""
    config = config_descriptor(document)
    if not config:
        return {"digest": None, "media_type": None}
    summary = {
        "digest": str(config[0]["digest"]),
        "media_type": text_or_none(config[0].get("mediaType")),
    }
    try:
        parsed = parse_document(storage.read_blob(config[0]["digest"]))
    except (StorageError, DocumentError):
        return summary
    if not isinstance(parsed, dict):
        return summary
    fields = ("created", "architecture", "os", "entrypoint", "cmd", "env", "labels")
    full = summarize_image_config(parsed)
    summary.update({field: full[field] for field in fields})
    return summary


def remove_image(storage, text):
    """Remove a tag (``NAME:TAG``) or a manifest and its tags (``NAME@DIGEST``)."""
    reference = parse_image_reference(text)
    manifest = resolve(storage, reference)
    if reference.digest is None:
        storage.delete_tag(reference.name, reference.tag)
        record_event(
            "tag deleted",
            repository=reference.name,
            reference=reference.tag,
            digest=manifest.digest,
        )
    else:
        remove_manifest(storage, reference.name, manifest.digest)
    return reference


def repository_contents(storage, text):
    """Return the name, tags and manifest digests of the repository ``text`` names."""
    reference = parse_image_reference(text, require_tag_or_digest=False)
    if reference.tag or reference.digest:
        raise InventoryError(f"{text!r}: give a repository NAME alone")
    try:
        tags = storage.list_tags(reference.name)
    except StorageError:
        raise InventoryError(f"no repository named {reference.name}") from None
    return reference.name, tags, storage.list_manifests(reference.name)


def remove_repository(storage, name):
    """Remove every manifest and tag of a repository; return how many of each."""
    name, tags, digests = repository_contents(storage, name)
    for digest in digests:
        try:
            remove_manifest(storage, name, digest)
        except StorageError:
            continue  # removed by another request since the listing
    for tag in storage.list_tags(name):  # tags naming no manifest it holds
        try:
            storage.delete_tag(name, tag)
        except StorageError:
            continue  # removed since the listing, or no tag the registry wrote
        record_event("tag deleted", repository=name, reference=tag)
    return len(digests), len(tags)


def disk_usage(storage):
    """Return the DiskUsage of the whole store, measured as the web UI does."""
    measured = measure_usage(storage, storage.list_repositories())
    return DiskUsage(
        total=measured["total"],
        blobs=measured["blob_count"],
        repositories=measured["repositories"],
        unreferenced=measured["reclaimable"],
        unreferenced_blobs=measured["reclaimable_count"],
    )


def format_listing(items, name=None):
    """Return repositories, or a repository's tags, as an aligned table."""
    if name:
        header = ("TAG", "DIGEST", "MEDIA TYPE", "SIZE")
        rows = [
            (t.tag, short_digest(t.digest), t.media_type, human_size(t.size))
            for t in items
        ]
    else:
        header = ("REPOSITORY", "TAGS", "MANIFESTS", "SIZE")
        rows = [
            (r.name, str(r.tags), str(r.manifests), human_size(r.size)) for r in items
        ]
    return format_table(header, rows)


def format_usage(usage):
    """Return a DiskUsage as lines a person reads."""
    unused = human_size(usage.unreferenced)
    lines = [
        f"total: {human_size(usage.total)} in {count_of(usage.blobs, 'blob')}",
        f"referenced by no manifest: {unused} in "
        f"{count_of(usage.unreferenced_blobs, 'blob')}",
    ]
    rows = [
        (entry["name"], *(human_size(entry[key]) for key in USAGE_COLUMNS))
        for entry in usage.repositories
    ]
    header = ("REPOSITORY", *(key.upper() for key in USAGE_COLUMNS))
    return "\n".join(lines) + "\n\n" + format_table(header, rows)


def count_of(number, noun):
    """Return ``1 blob`` or ``2 blobs``: a count with its noun in the right number."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def format_table(header, rows):
    """Return rows under a header, columns padded to their widest cell."""
    table = [header, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def as_plain_data(items):
    """Return dataclasses as dicts, for ``--json``."""
    if isinstance(items, list):
        return [asdict(item) for item in items]
    return asdict(items)
