"""Descriptors of a pushed manifest, checked as the OCI image spec defines them.

A descriptor names content by ``mediaType``, ``digest`` and ``size``; it may
carry ``urls``, ``annotations``, ``data`` and ``artifactType``, and an index
entry a ``platform``. Every refusal names the field at fault, such as
``layers[2].size``, so a client learns what to fix.
"""

import re
from dataclasses import dataclass

from app.errors import DigestInvalid, ManifestInvalid
from app.reference import Digest, parse_digest

# RFC 6838 type and subtype, the form the image spec requires of media types.
MEDIA_TYPE_PATTERN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


@dataclass(frozen=True)
class Descriptor:
    """A checked descriptor and where the manifest holds it (``layers[0]``)."""

    field: str
    media_type: str
    digest: Digest
    size: int


def parse_descriptor(value, field):
    """Return the Descriptor ``value`` spells, or raise ManifestInvalid."""
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{field} must be a descriptor", {"field": field})
    media_type = check_media_type(value.get("mediaType"), f"{field}.mediaType")
    digest = check_digest(value.get("digest"), f"{field}.digest")
    size = check_size(value.get("size"), f"{field}.size")
    check_optional(value, field, "urls", is_string_list, "a list of strings")
    check_optional(value, field, "data", is_string, "a string")
    check_annotations(value.get("annotations"), f"{field}.annotations")
    if value.get("artifactType") is not None:
        check_media_type(value["artifactType"], f"{field}.artifactType")
    return Descriptor(field, media_type, digest, size)


def parse_descriptor_list(document, field, parse=parse_descriptor):
    """Return the Descriptors of a required (possibly empty) list field."""
    items = document.get(field)
    if not isinstance(items, list):
        detail = {"field": field}
        raise ManifestInvalid(f"{field} must be a list of descriptors", detail)
    return tuple(parse(item, f"{field}[{index}]") for index, item in enumerate(items))


def parse_index_entry(value, field):
    """Return the Descriptor of an index's entry, its platform checked too."""
    descriptor = parse_descriptor(value, field)
    platform = value.get("platform")
    if platform is not None and not is_platform(platform):
        detail = {"field": f"{field}.platform"}
        raise ManifestInvalid(
            f"{field}.platform must be an object with string os and architecture",
            detail,
        )
    return descriptor


def check_media_type(value, field):
    """Return ``value`` if it is a media type such as ``application/json``."""
    if not isinstance(value, str) or not MEDIA_TYPE_PATTERN.fullmatch(value):
        raise ManifestInvalid(
            f"{field} must be a media type", {"field": field, "value": value}
        )
    return value


def check_digest(value, field):
    """Return the Digest ``value`` spells, or raise ManifestInvalid."""
    try:
        return parse_digest(value if isinstance(value, str) else None)
    except DigestInvalid:
        detail = {"field": field, "value": value}
        raise ManifestInvalid(f"{field} must be a valid digest", detail) from None


def check_size(value, field):
    """Return ``value`` if it is a whole number of bytes (JSON true is not one)."""
    if type(value) is not int or value < 0:
        detail = {"field": field, "value": value}
        raise ManifestInvalid(f"{field} must be a non-negative integer", detail)
    return value


def check_annotations(value, field):
    """Return annotations if absent or a map of strings to strings."""
    if value is not None and not (
        isinstance(value, dict) and all(map(is_string, value.values()))
    ):
        raise ManifestInvalid(f"{field} must map strings to strings", {"field": field})
    return value


def check_optional(value, field, key, is_valid, kind):
    """Raise ManifestInvalid if ``value[key]`` is present but not of ``kind``."""
    if key in value and not is_valid(value[key]):
        detail = {"field": f"{field}.{key}"}
        raise ManifestInvalid(f"{field}.{key} must be {kind}", detail)


def is_string(value):
    return isinstance(value, str)


def is_string_list(value):
    return isinstance(value, list) and all(map(is_string, value))


def is_platform(value):
    """Tell whether ``value`` is a platform object: os and architecture named."""
    return (
        isinstance(value, dict)
        and is_string(value.get("os"))
        and is_string(value.get("architecture"))
    )
