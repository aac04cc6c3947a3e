"""Garbage collection: remove what no manifest worth keeping references.

Marking starts, in every repository, from its tags and (unless ``untagged``)
from every manifest it holds, and follows index children, the referrers of kept
manifests, and the config and layers of each. Sweeping then removes manifests
no longer kept (only with ``untagged``), repository blob links and blobs that
nothing marked references, and uploads idle past their expiry.

The registry may take pushes meanwhile. Every write or touch of a blob, link or
manifest sets its modification time, and nothing modified within the grace
period is removed; storage checks that time again as it removes each file, so
a push that links, mounts or uploads a blob during the run keeps it.
"""

import time
from dataclasses import dataclass, field
from functools import partial

from app.config import DEFAULTS
from app.documents import DocumentError, parse_document
from app.errors import DigestInvalid
from app.events import record_event
from app.reference import parse_digest
from app.storage.errors import BlobNotFound, ManifestNotFound, RepositoryNotFound
from app.ui.inventory import human_size

DEFAULT_GRACE = DEFAULTS["REGISTRY_GC_GRACE"]


@dataclass(frozen=True)
class Freed:
    """One thing a collection removed, or would remove in a dry run."""

    key: str
    size: int
    repository: str | None = None

    def to_dict(self, key_name):
        entry = {"repository": self.repository} if self.repository else {}
        return {**entry, key_name: self.key, "size": self.size}


@dataclass(frozen=True)
class Left:
    """Something a collection found in an item's place and left alone: what
    the registry never writes there (a folder, a FIFO...)."""

    place: str
    key: str
    found: str
    repository: str | None = None

    def to_dict(self):
        entry = {"repository": self.repository} if self.repository else {}
        key_name = "upload" if self.place == "upload" else "digest"
        return {**entry, "place": self.place, key_name: self.key, "found": self.found}

    def describe(self):
        where = f"{self.repository} " if self.repository else ""
        return f"{self.place} {where}{self.key} ({self.found})"


@dataclass
class CollectionResult:
    """What a collection removed (or, in a dry run, would remove)."""

    dry_run: bool
    manifests: list = field(default_factory=list)
    blob_links: list = field(default_factory=list)
    blobs: list = field(default_factory=list)
    uploads: list = field(default_factory=list)
    # Repository folders left empty (by deletes or by this sweep) and removed.
    folders: int = 0
    # Odd entries found where items are kept, and left alone.
    left: list = field(default_factory=list)

    # Each kind, with what its items' keys are called in reports and logs.
    KINDS = {
        "manifests": "digest",
        "blob_links": "digest",
        "blobs": "digest",
        "uploads": "upload",
    }
    EVENTS = {
        "manifests": "manifest collected",
        "blob_links": "blob link collected",
        "blobs": "blob collected",
        "uploads": "upload expired",
    }

    def add(self, kind, item):
        """Count one removed item, and log it unless this is a dry run."""
        getattr(self, kind).append(item)
        if not self.dry_run:
            record_event(self.EVENTS[kind], **item.to_dict(self.KINDS[kind]))

    # A manifest's size is its blob's, which the blobs line counts when the blob
    # goes (a record's own file is a few bytes): the total leaves it out.
    FREEING_KINDS = ("blob_links", "blobs", "uploads")

    @property
    def freed_bytes(self):
        """Bytes of every removed file together: blobs, links and uploads."""
        kinds = self.FREEING_KINDS
        return sum(item.size for kind in kinds for item in getattr(self, kind))

    def summary_lines(self):
        """Return one line per kind with its count and size, then the total."""
        verb = "would remove" if self.dry_run else "removed"
        lines = []
        for kind in self.KINDS:
            items = getattr(self, kind)
            size = human_size(sum(item.size for item in items))
            label = kind.replace("_", " ")
            lines.append(f"{label}: {verb} {len(items)} ({size})")
        total = "would free" if self.dry_run else "freed"
        lines.append(f"{total} {human_size(self.freed_bytes)} in total")
        if self.left:
            lines.append(f"left in place: {len(self.left)} not written by the registry")
            lines.extend(f"  {item.describe()}" for item in self.left)
        return lines

    def leave(self, place, item, repository=None):
        """Note an odd item found in ``place`` and left alone."""
        self.left.append(Left(place, str(item.key), item.odd, repository))

    def to_dict(self):
        """Return the result as plain JSON-ready data."""
        result = {"dry_run": self.dry_run, "freed_bytes": self.freed_bytes}
        for kind, key_name in self.KINDS.items():
            result[kind] = [item.to_dict(key_name) for item in getattr(self, kind)]
        result["left_in_place"] = [item.to_dict() for item in self.left]
        return result


@dataclass
class RepositoryMarks:
    """What one repository keeps: manifests, blobs, and its manifest records."""

    records: dict
    manifests: set = field(default_factory=set)
    blobs: set = field(default_factory=set)


def collect_garbage(
    storage,
    grace=DEFAULT_GRACE,
    untagged=False,
    dry_run=False,
    upload_expiry=None,
    progress=None,
):
    """Mark what is referenced, sweep the rest; return a CollectionResult.

    ``grace`` seconds protect anything modified that recently; ``upload_expiry``
    seconds of idleness expire an upload (None leaves uploads alone).
    ``progress``, if given, is called with a line of text per step.
    """
    report = progress or (lambda line: None)
    cutoff = time.time() - grace
    result = CollectionResult(dry_run)

    marks = {}
    for name in storage.list_stored_repositories():
        report(f"marking {name}")
        marks[name] = mark_repository(storage, name, cutoff, untagged)
        for item in marks[name].records.values():
            if item.odd:
                result.leave("manifest record", item, name)
    if untagged:
        report("sweeping manifests")
        sweep_manifests(storage, marks, cutoff, result)
    report("sweeping blob links")
    linked = sweep_blob_links(storage, marks, cutoff, result)
    report("sweeping blobs")
    kept = linked.union(*(repository.blobs for repository in marks.values()))
    sweep_blobs(storage, kept, cutoff, result)
    if upload_expiry is not None:
        report("expiring uploads")
        expire_uploads(storage, upload_expiry, result)
    if not dry_run:
        report("removing empty folders")
        # Judged at this moment: the sweeps above just emptied some of them.
        result.folders = storage.sweep_empty_folders(time.time() - grace)

    if not dry_run:
        counts = {kind: len(getattr(result, kind)) for kind in result.KINDS}
        counts["folders"] = result.folders
        record_event("garbage collected", size=result.freed_bytes, **counts)
    return result


def configured_collector(config):
    """Return ``collect_garbage`` with a configuration's grace and upload expiry."""
    return partial(
        collect_garbage,
        grace=config["REGISTRY_GC_GRACE"],
        upload_expiry=config["REGISTRY_UPLOAD_EXPIRY"],
    )


# Marking.


def mark_repository(storage, name, cutoff, untagged):
    """Return the RepositoryMarks of everything the repository keeps."""
    records = {item.key: item for item in storage.scan_manifests(name)}
    if untagged:
        fresh = {digest for digest, item in records.items() if item.modified > cutoff}
        roots = tagged_digests(storage, name) | fresh
    else:
        roots = set(records)
    marks = RepositoryMarks(records)
    mark_manifests(storage, name, roots, marks)
    return marks


def tagged_digests(storage, name):
    """Return the digests the repository's tags point to."""
    digests = set()
    try:
        tags = storage.list_tags(name)
    except RepositoryNotFound:
        return digests
    for tag in tags:
        try:
            digests.add(storage.resolve_tag(name, tag))
        except (ManifestNotFound, DigestInvalid):
            continue  # removed since the listing, or not a digest at all
    return digests


def mark_manifests(storage, name, roots, marks):
    """Mark ``roots``, their children, referrers, configs and layers as kept."""
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in marks.manifests:
            continue
        marks.manifests.add(digest)
        marks.blobs.add(digest)
        try:
            body = storage.get_manifest(name, digest).body
        except ManifestNotFound:
            continue
        blobs, children = manifest_references(body)
        marks.blobs.update(blobs)
        pending.extend(children)
        pending.extend(descriptor_digests(storage.list_referrers(name, digest)))


def manifest_references(body):
    """Return the blob digests and child manifest digests a stored manifest names."""
    try:
        document = parse_document(body)
    except DocumentError:
        return set(), set()
    if not isinstance(document, dict):
        return set(), set()
    blobs = descriptor_digests([document.get("config")])
    for field_name in ("layers", "blobs"):
        blobs |= descriptor_digests(document.get(field_name))
    return blobs, descriptor_digests(document.get("manifests"))


def descriptor_digests(descriptors):
    """Return the valid digests named by a list of descriptors."""
    digests = set()
    if not isinstance(descriptors, list):
        return digests
    for descriptor in descriptors:
        if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
            try:
                digests.add(parse_digest(descriptor["digest"]))
            except DigestInvalid:
                continue
    return digests


# Sweeping.


def sweep_manifests(storage, marks, cutoff, result):
    """Remove manifests no tag reaches, with the referrer record each leaves."""
    for name, repository in marks.items():
        unkept = set(repository.records) - repository.manifests
        for digest in keepers_first(storage, name, unkept):
            item = repository.records[digest]
            if digest in repository.manifests or item.odd:
                continue
            sweep = partial(remove_manifest, storage, name, digest)
            if removed(item, cutoff, result, sweep):
                size = manifest_size(storage, digest)
                result.add("manifests", Freed(str(digest), size, name))
            elif not result.dry_run:
                # Touched since marking: keep it and all it references.
                mark_manifests(storage, name, [digest], repository)


def manifest_size(storage, digest):
    """Return the size of a manifest's own blob; 0 if the store lacks it."""
    try:
        return storage.blob_size(digest)
    except BlobNotFound:
        return 0


def keepers_first(storage, name, digests):
    """Order ``digests``: indexes before their children, subjects before referrers.

    A push may touch a manifest while the sweep runs, and a manifest kept that
    way keeps what it references; deciding on those only afterwards means none
    of them is already gone.
    """
    order, seen = [], set()

    def visit(digest):
        if digest in seen or digest not in digests:
            return
        seen.add(digest)
        for kept in kept_by(storage, name, digest):
            visit(kept)
        order.append(digest)

    for digest in sorted(digests, key=str):
        visit(digest)
    return order[::-1]


def kept_by(storage, name, digest):
    """Return the manifests that keeping ``digest`` keeps: children, referrers."""
    try:
        _blobs, children = manifest_references(storage.get_manifest(name, digest).body)
    except ManifestNotFound:
        children = set()
    return children | descriptor_digests(storage.list_referrers(name, digest))


def remove_manifest(storage, name, digest, cutoff):
    """Remove one manifest record and its referrer record; tell if it went."""
    try:
        body = storage.get_manifest(name, digest).body
    except ManifestNotFound:
        body = b""
    if not storage.sweep_manifest(name, digest, cutoff):
        return False
    subject = subject_digest(body)
    if subject is not None:
        storage.remove_referrer(name, subject, digest)
    return True


def subject_digest(body):
    """Return the digest of a manifest body's subject, or None."""
    try:
        document = parse_document(body)
    except DocumentError:
        return None
    if not isinstance(document, dict):
        return None
    subjects = descriptor_digests([document.get("subject")])
    return subjects.pop() if subjects else None


def sweep_blob_links(storage, marks, cutoff, result):
    """Remove unreferenced blob links; return the digests of links that stay."""
    linked = set()
    for name, repository in marks.items():
        for item in storage.scan_blob_links(name):
            if item.odd:
                # Kept, with its blob: what is there is for a person to look at.
                result.leave("blob link", item, name)
                linked.add(item.key)
                continue
            sweep = partial(storage.sweep_blob_link, name, item.key)
            if item.key in repository.blobs or not removed(item, cutoff, result, sweep):
                linked.add(item.key)
                continue
            result.add("blob_links", Freed(str(item.key), item.size, name))
    return linked


def sweep_blobs(storage, kept, cutoff, result):
    """Remove blobs that no kept manifest or remaining link references."""
    for item in storage.scan_blobs():
        if item.odd:
            result.leave("blob", item)
            continue
        if item.key in kept:
            continue
        if removed(item, cutoff, result, partial(storage.sweep_blob, item.key)):
            result.add("blobs", Freed(str(item.key), item.size))


def removed(item, cutoff, result, sweep):
    """Call ``sweep(cutoff)`` (in a dry run, only judge the item); tell if it went."""
    if result.dry_run:
        return item.modified <= cutoff
    return sweep(cutoff)


def expire_uploads(storage, expiry, result):
    """Remove uploads idle for ``expiry`` seconds, recording their sizes."""
    uploads = {}
    for item in storage.scan_uploads():
        if item.odd:
            result.leave("upload", item)
        else:
            uploads[item.key] = item
    if result.dry_run:
        cutoff = time.time() - expiry
        expired = [key for key, item in uploads.items() if item.modified < cutoff]
    else:
        expired = storage.expire_uploads(expiry)
    for key in expired:
        size = uploads[key].size if key in uploads else 0
        result.add("uploads", Freed(key, size))
