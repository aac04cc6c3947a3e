"""What the store holds, summed up for people: repositories, tags, manifests, usage.

Everything here reads storage through its contract and returns plain dicts and
lists, ready for a template or for JSON; nothing here knows about requests.
"""

import re
from datetime import datetime, timezone

from app.documents import DocumentError, parse_document
from app.errors import DigestInvalid
from app.reference import is_name, parse_digest
from app.storage.errors import BlobNotFound, ManifestNotFound, StorageError
from app.ui.image_config import string_map_of, summarize_image_config, text_or_none
from app.v2.manifests import INDEX_TYPES

# Units of human_size, each 1024 times the one before.
SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

# Date and minute of an RFC 3339 time, skipping seconds, then its zone.
TIME_PATTERN = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d:\d\d)?"
)

# How many hex digits of a digest the pages show before the full value is copied.
SHORT_DIGEST_LENGTH = 12


def short_digest(digest):
    """Return ``sha256:0123456789ab``: enough of a digest to tell it apart."""
    algorithm, _, encoded = str(digest).partition(":")
    return f"{algorithm}:{encoded[:SHORT_DIGEST_LENGTH]}"


def human_size(size):
    """Return a byte count as ``12.3 MiB``; ``-`` when unknown."""
    if not isinstance(size, int) or size < 0:
        return "-"
    value = float(size)
    for unit in SIZE_UNITS:
        if value < 1024 or unit == SIZE_UNITS[-1]:
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def human_time(text):
    """Return an RFC 3339 time as ``2026-01-02 03:04 UTC``; ``-`` without one."""
    match = TIME_PATTERN.match(text or "") if isinstance(text, str) else None
    if match is None:
        return text or "-"
    day, minute, zone = match.groups()
    if zone in ("Z", "+00:00"):
        zone = "UTC"
    return " ".join(part for part in (day, minute, zone) if part)


def format_time(timestamp):
    """Return a POSIX timestamp as RFC 3339 in UTC, or None without one."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# Half of a UTF-16 surrogate pair, which a str can hold and UTF-8 cannot.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(data):
    """Return the JSON object in ``data``, or an empty dict if it holds none.

    Its text is made fit for a page: JSON may escape half of a surrogate
    pair on its own (``"\\ud800"``), which no UTF-8 page can hold; such a
    half shows as U+FFFD.
    """
    try:
        document = parse_document(data)
    except DocumentError:
        return {}
    return printable(document) if isinstance(document, dict) else {}


def printable(value):
    """Return ``value`` with every lone surrogate in its strings replaced."""
    if isinstance(value, str):
        return value if value.isascii() else LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [printable(item) for item in value]
    return value


def descriptors(document, field):
    """Return the well-formed descriptors of a list field, with parsed digests."""
    items = document.get(field)
    return parse_descriptors(items if isinstance(items, list) else [])


def config_descriptor(document):
    """Return the descriptor of a manifest's config as a one-item list, or none."""
    return parse_descriptors([document.get("config")])


def parse_descriptors(items):
    """Return the items that are descriptors with a valid digest, digest parsed."""
    found = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("digest"), str):
            try:
                found.append({**item, "digest": parse_digest(item["digest"])})
            except DigestInvalid:
                continue
    return found


def referenced_digests(storage, name, digest):
    """Return the digests a manifest stands on: itself, config, layers, children."""
    manifest = storage.get_manifest(name, digest)
    document = load_json(manifest.body)
    found = {digest}
    parts = config_descriptor(document)
    parts += descriptors(document, "layers") + descriptors(document, "manifests")
    found.update(item["digest"] for item in parts)
    return found


def repository_blobs(storage, name):
    """Return every digest that the manifests of a repository stand on."""
    found = set()
    for digest in storage.list_manifests(name):
        try:
            found |= referenced_digests(storage, name, digest)
        except ManifestNotFound:
            continue  # deleted by another request since the listing
    return found


def total_size(storage, digests):
    """Return the bytes that ``digests`` occupy in the store; absent ones count 0."""
    size = 0
    for digest in digests:
        try:
            size += storage.blob_size(digest)
        except BlobNotFound:
            continue
    return size


def last_pushed(storage, name, tags):
    """Return the newest push time of the given tags, or None without tags."""
    times = []
    for tag in tags:
        try:
            times.append(storage.tag_pushed_at(name, tag))
        except ManifestNotFound:
            continue
    return max(times, default=None)


def can_be_read(storage, name):
    """Tell whether a catalog entry names a repository that can be read now.

    An entry put into the catalog by hand may name no repository at all, and
    a repository's folder may be gone or be no folder.
    """
    return is_name(name) and storage.repository_exists(name)


def summarize_repositories(storage, names):
    """Return the summaries of the repositories named that can be read.

    A repository gone since the listing, or whose folder is no folder, is
    left out rather than failing the whole list.
    """
    summaries = []
    for name in names:
        try:
            summaries.append(summarize_repository(storage, name))
        except StorageError:
            continue
    return summaries


def summarize_repository(storage, name):
    """Return a repository's tag count, total size and last push time."""
    tags = storage.list_tags(name)
    return {
        "name": name,
        "tag_count": len(tags),
        "size": total_size(storage, repository_blobs(storage, name)),
        "last_pushed": format_time(last_pushed(storage, name, tags)),
    }


def read_config(storage, name, document):
    """Return the image config a manifest names, or an empty dict."""
    config = config_descriptor(document)
    if not config or not storage.repository_has_blob(name, config[0]["digest"]):
        return {}
    try:
        return load_json(storage.read_blob(config[0]["digest"]))
    except BlobNotFound:
        return {}  # collected, or made unreadable, since the look


def platform_name(platform):
    """Return ``os/architecture[/variant]`` for an index entry's platform."""
    if not isinstance(platform, dict):
        return "unknown"
    parts = [platform.get(key) for key in ("os", "architecture", "variant")]
    named = [part for part in parts if isinstance(part, str) and part]
    return "/".join(named) or "unknown"


def describe_tag(storage, name, tag):
    """Return what a repository page shows of one tag."""
    digest = storage.resolve_tag(name, tag)
    manifest = storage.get_manifest(name, digest)
    document = load_json(manifest.body)
    config = read_config(storage, name, document)
    return {
        "tag": tag,
        "digest": str(digest),
        "short_digest": short_digest(digest),
        "media_type": manifest.media_type,
        "size": total_size(storage, referenced_digests(storage, name, digest)),
        "created": text_or_none(config.get("created")),
        "platforms": [
            platform_name(item.get("platform"))
            for item in descriptors(document, "manifests")
        ],
        "pushed": format_time(storage.tag_pushed_at(name, tag)),
    }


def describe_tags(storage, name):
    """Return the details of every tag of a repository that can be read.

    A tag moved or deleted since the listing, or one that is not a file
    naming a manifest the repository holds, is left out.
    """
    details = []
    for tag in storage.list_tags(name):
        try:
            details.append(describe_tag(storage, name, tag))
        except StorageError:
            continue
    return details


def summarize_config(config):
    """Return the parts of an image config a person looks for, each of one type."""
    summary = summarize_image_config(config)
    fields = ("created", "entrypoint", "cmd", "env", "labels", "history")
    return {
        **{field: summary[field] for field in fields},
        "platform": platform_name(summary) if config else None,
    }


def declared_size(descriptor):
    """Return the size a descriptor declares, or None if it is no byte count."""
    size = descriptor.get("size")
    return size if type(size) is int and size >= 0 else None


def describe_layers(storage, document):
    """Return the layers of an image manifest with their sizes."""
    return [
        {
            "digest": str(layer["digest"]),
            "short_digest": short_digest(layer["digest"]),
            "media_type": text_or_none(layer.get("mediaType")),
            "size": declared_size(layer),
        }
        for layer in descriptors(document, "layers")
    ]


def describe_children(document):
    """Return the manifests an index lists, with their platforms."""
    return [
        {
            "digest": str(item["digest"]),
            "short_digest": short_digest(item["digest"]),
            "media_type": text_or_none(item.get("mediaType")),
            "size": declared_size(item),
            "platform": platform_name(item.get("platform")),
        }
        for item in descriptors(document, "manifests")
    ]


def group_referrers(storage, name, digest):
    """Return the referrers of a manifest grouped by artifact type.

    A record that names no valid digest (not one the registry wrote) is left out.
    """
    groups = {}
    for descriptor in parse_descriptors(storage.list_referrers(name, digest)):
        kind = text_or_none(descriptor.get("artifactType")) or text_or_none(
            descriptor.get("mediaType")
        )
        groups.setdefault(kind or "unknown", []).append(
            {
                "digest": str(descriptor["digest"]),
                "short_digest": short_digest(descriptor["digest"]),
                "size": declared_size(descriptor),
                "annotations": string_map_of(descriptor.get("annotations")),
            }
        )
    return [{"artifact_type": kind, "referrers": groups[kind]} for kind in groups]


def describe_manifest(storage, name, digest):
    """Return what a manifest page shows: config summary, layers, referrers."""
    manifest = storage.get_manifest(name, digest)
    document = load_json(manifest.body)
    is_index = manifest.media_type in INDEX_TYPES
    config = {} if is_index else read_config(storage, name, document)
    return {
        "name": name,
        "digest": str(digest),
        "short_digest": short_digest(digest),
        "media_type": manifest.media_type,
        "artifact_type": text_or_none(document.get("artifactType")),
        "tags": storage.find_tags(name, digest),
        "size": total_size(storage, referenced_digests(storage, name, digest)),
        "is_index": is_index,
        "config": summarize_config(config),
        "layers": describe_layers(storage, document),
        "manifests": describe_children(document),
        "referrers": group_referrers(storage, name, digest),
    }
