"""Names: what the target and the archive call an image, and which images to import.

A reference is a repository name and tag, spelled ``[HOST/]NAME[:TAG]`` by the
target of an import, by ``RepoTags`` of a docker-save ``manifest.json`` and by
the annotations of an OCI layout's ``index.json``. The readers list the images an
archive holds, each with the references it names; ``select_images`` picks from those.
"""

from dataclasses import dataclass

from app.errors import RegistryError
from app.images.errors import ImageImportError
from app.reference import validate_name, validate_tag

DEFAULT_TAG = "latest"
NAME_RULE = "lowercase letters and digits, separated by '.', '_', '-' or '/'"
TAG_RULE = "up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"


@dataclass(frozen=True)
class Reference:
    """A repository name and tag; the name is None if the archive gives a tag only."""

    name: str | None
    tag: str

    def __str__(self):
        return self.tag if self.name is None else f"{self.name}:{self.tag}"


def parse_reference(text, origin):
    """Return the name and tag ``[HOST/]NAME[:TAG]`` spells, without the host."""
    name, tag = _split_tag(text)
    name = _strip_host(name)
    return Reference(_check_name(name, origin), check_tag(tag, origin))


def _split_tag(text):
    """Split ``NAME[:TAG]`` at the tag's colon; no tag means ``latest``."""
    name, colon, tag = text.rpartition(":")
    if not colon or "/" in tag:
        return text, DEFAULT_TAG
    return name, tag


def _strip_host(name):
    """Drop a leading registry host (``docker.io/``, ``localhost:5000/``)."""
    first, slash, rest = name.partition("/")
    if first in (".", ".."):
        return name  # a path, not a host: the name check refuses it
    if slash and ("." in first or ":" in first or first == "localhost"):
        return rest
    return name


def _check_name(name, origin):
    """Return a valid repository name, or say in one line why it is not."""
    return _checked(validate_name, name, origin, f"repository name ({NAME_RULE})")


def check_tag(tag, origin):
    """Return a valid tag, or say in one line why it is not."""
    return _checked(validate_tag, tag, origin, f"tag ({TAG_RULE})")


def _checked(validate, value, origin, what):
    """Return ``validate(value)``, or an ImageImportError naming ``what`` it is not."""
    try:
        return validate(value)
    except RegistryError:
        message = f"{origin}: {value!r} is not a valid {what}"
        raise ImageImportError(message) from None


# Choosing what to import.


def select_images(items, wanted):
    """Return (item, references) pairs: every named item, or the target's one."""
    if not items:
        raise ImageImportError("the archive holds no images")
    if wanted is None:
        return [(item, _named_references(item)) for item in items]
    if len(items) == 1:
        return [(items[0], (wanted,))]
    return [(_match_target(items, wanted), (wanted,))]


def _named_references(item):
    """Return an item's references, all of which must carry a repository name."""
    if not item.references or any(ref.name is None for ref in item.references):
        raise ImageImportError(
            f"the archive gives no repository name for {item.label};"
            " give a target NAME:TAG"
        )
    return item.references


def _match_target(items, wanted):
    """Return the one item named like ``wanted``, or the one with its tag."""
    matches = [item for item in items if wanted in item.references]
    if not matches:
        matches = [item for item in items if _has_tag(item, wanted.tag)]
    if len(matches) == 1:
        return matches[0]
    held = ", ".join(item.label for item in items)
    if matches:
        found = f"{len(matches)} images in the archive match"
    else:
        found = "no image in the archive matches"
    raise ImageImportError(f"{found} target {wanted}; it holds: {held}")


def _has_tag(item, tag):
    """Tell whether one of the item's references has this tag."""
    return any(ref.tag == tag for ref in item.references)
