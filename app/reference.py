"""The grammar of repository names, tags and digests, as the OCI spec gives it.

Everything a client sends passes through here before it reaches storage, so
storage only ever sees names, tags and digests that cannot name a path outside
its root.
"""

import hashlib
import re
from dataclasses import dataclass

from app.errors import DigestInvalid, NameInvalid, TagInvalid

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = re.compile(rf"{NAME_COMPONENT}(?:/{NAME_COMPONENT})*")
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_PATTERN = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")

# Clients limit "host:port/name" to 255 characters; the name alone may not exceed it.
NAME_MAX_LENGTH = 255

# Algorithms this registry computes, with the length of their hex encoding.
DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}
HEX_PATTERN = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True)
class Digest:
    """A validated content digest such as ``sha256:e3b0...``."""

    algorithm: str
    hex: str

    def __str__(self):
        return f"{self.algorithm}:{self.hex}"

    def hasher(self):
        """Return a fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)


def parse_digest(text):
    """Return the Digest that ``text`` spells, or raise DigestInvalid."""
    match = DIGEST_PATTERN.fullmatch(text or "")
    if not match:
        raise DigestInvalid(detail={"digest": text})
    algorithm, encoded = match.groups()
    if algorithm not in DIGEST_ALGORITHMS:
        raise DigestInvalid("unsupported digest algorithm", {"digest": text})
    if len(encoded) != DIGEST_ALGORITHMS[algorithm] or not HEX_PATTERN.fullmatch(
        encoded
    ):
        raise DigestInvalid(detail={"digest": text})
    return Digest(algorithm, encoded)


def compute_digest(data, algorithm="sha256"):
    """Return the Digest of ``data`` (bytes)."""
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def is_name(name):
    """Tell whether ``name`` is a valid repository name."""
    return len(name) <= NAME_MAX_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def validate_name(name):
    """Return ``name`` if it is a valid repository name, else raise NameInvalid."""
    if not is_name(name):
        raise NameInvalid(detail={"name": name})
    return name


def validate_tag(tag):
    """Return ``tag`` if it is a valid tag, else raise TagInvalid."""
    if not TAG_PATTERN.fullmatch(tag):
        raise TagInvalid(detail={"tag": tag})
    return tag


def is_digest(reference):
    """Tell whether a manifest reference is a digest rather than a tag."""
    return ":" in reference


def parse_reference(reference):
    """Return a Digest or a tag string for a manifest reference."""
    if is_digest(reference):
        return parse_digest(reference)
    return validate_tag(reference)
