"""Access tokens: scopes, grants, and the signed form clients carry.

A token is an itsdangerous-signed, timestamped grant::

    {"sub": <account or "">, "aud": <service>,
     "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}]}

A refresh token (what ``docker login`` keeps as its identity token) is signed
with another salt and carries no access, only who and for which service::

    {"sub": <account>, "aud": <service>, "pwd": <fingerprint of the hash>}

so changing the password or removing the user ends it.
"""

import os
import re
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.reference import NAME_MAX_LENGTH, NAME_PATTERN

TOKEN_SALT = "registry-access-token"
REFRESH_SALT = "registry-refresh-token"
KNOWN_ACTIONS = ("pull", "push", "delete", "*")
MAX_SCOPES = 64
# How much of a scope that does not read an error message quotes.
SCOPE_SHOWN_LENGTH = 100
# A resource type, with the deprecated class clients may still add: repository(plugin).
TYPE_PATTERN = re.compile(r"([a-z0-9]+)(?:\([a-z0-9]+\))?")
# A repository name in a scope may start with the registry's host[:port].
HOST_COMPONENT = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
HOST_PREFIX_PATTERN = re.compile(
    rf"{HOST_COMPONENT}(?:\.{HOST_COMPONENT})*(?::[0-9]+)?/"
)
ACTIONS_PATTERN = re.compile(r"[a-z*]*(?:,[a-z*]*)*")
# Verified tokens kept in memory, so a busy client costs no signature check.
VERIFIED_CACHE_SIZE = 4096


class ScopeInvalid(ValueError):
    """A scope that does not follow the grammar, or too many of them."""


@dataclass(frozen=True)
class Scope:
    """What a client asks for: actions on one resource."""

    type: str
    name: str
    actions: tuple

    def __str__(self):
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text):
    """Return the Scope that ``type:name:actions`` spells, or raise ScopeInvalid.

    The name may hold a ``host:port``, so the actions follow the last colon.
    Unknown actions are dropped here; unknown types are the caller's to ignore.
    """
    resource_type, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    type_match = TYPE_PATTERN.fullmatch(resource_type)
    if type_match is None or not name or not ACTIONS_PATTERN.fullmatch(actions):
        raise ScopeInvalid(scope_error(text))
    resource_type = type_match[1]
    if resource_type == "repository" and not is_repository_name(name):
        raise ScopeInvalid(scope_error(text))
    wanted = tuple(action for action in actions.split(",") if action in KNOWN_ACTIONS)
    return Scope(resource_type, name, tuple(dict.fromkeys(wanted)))


def scope_error(text):
    """Return the message for a scope that does not read, quoting a short part."""
    shown = (
        text if len(text) <= SCOPE_SHOWN_LENGTH else text[:SCOPE_SHOWN_LENGTH] + "..."
    )
    return f"scope {shown!r} is not type:name:actions"


def is_repository_name(name):
    """Tell whether a scope's name is a repository name, maybe after host:port/."""
    prefix = HOST_PREFIX_PATTERN.match(name)
    if prefix and ("." in prefix[0] or ":" in prefix[0] or prefix[0] == "localhost/"):
        name = name[prefix.end() :]
    return len(name) <= NAME_MAX_LENGTH and bool(NAME_PATTERN.fullmatch(name))


def parse_scopes(values):
    """Return the Scopes in repeated or space-separated ``scope`` parameters."""
    texts = [text for value in values for text in value.split()]
    if len(texts) > MAX_SCOPES:
        raise ScopeInvalid(f"at most {MAX_SCOPES} scopes may be asked at once")
    return [parse_scope(text) for text in texts]


class TokenSigner:
    """Signs grants into tokens and checks tokens back into grants."""

    def __init__(self, key, service, expiry, refresh_expiry=None):
        self.serializer = URLSafeTimedSerializer(key, salt=TOKEN_SALT)
        self.refresh_serializer = URLSafeTimedSerializer(key, salt=REFRESH_SALT)
        self.service = service
        self.expiry = expiry
        self.refresh_expiry = refresh_expiry or expiry
        self.verified = {}

    def issue(self, subject, grants):
        """Return a token granting ``grants`` (a list of Scopes) to ``subject``."""
        access = [
            {"type": scope.type, "name": scope.name, "actions": list(scope.actions)}
            for scope in grants
        ]
        payload = {"sub": subject, "aud": self.service, "access": access}
        return self.serializer.dumps(payload)

    def verify(self, token):
        """Return the grant a token carries, or None if it is forged or expired."""
        cached = self.verified.get(token)
        if cached is not None and time.time() - cached[1] <= self.expiry:
            return cached[0]
        try:
            payload, signed_at = self.serializer.loads(
                token, max_age=self.expiry, return_timestamp=True
            )
        except (BadSignature, SignatureExpired, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("aud") != self.service:
            return None
        self.remember(token, payload, signed_at.timestamp())
        return payload

    def remember(self, token, payload, signed_at):
        """Keep a verified token, forgetting them all when the cache is full."""
        if len(self.verified) >= VERIFIED_CACHE_SIZE:
            self.verified.clear()
        self.verified[token] = (payload, signed_at)

    def issue_refresh(self, subject, fingerprint):
        """Return a long-lived refresh token for ``subject`` on this service."""
        payload = {"sub": subject, "aud": self.service, "pwd": fingerprint}
        return self.refresh_serializer.dumps(payload)

    def verify_refresh(self, token):
        """Return ``(subject, fingerprint)`` of a valid refresh token, else None."""
        try:
            payload = self.refresh_serializer.loads(token, max_age=self.refresh_expiry)
        except (BadSignature, SignatureExpired, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("aud") != self.service:
            return None
        subject, fingerprint = payload.get("sub"), payload.get("pwd")
        if not isinstance(subject, str) or not subject:
            return None
        return subject, fingerprint


def allows(grant, resource_type, name, action):
    """Tell whether a verified grant covers ``action`` on a resource."""
    for entry in grant.get("access", ()):
        if (
            entry.get("type") == resource_type
            and entry.get("name") == name
            and action in entry.get("actions", ())
        ):
            return True
    return False


def load_signing_key(path):
    """Return the signing key stored at ``path``, creating it (mode 0600) if absent.

    Every worker calls this at start; the key is written to a temporary file
    and linked into place, so concurrent starts agree on one key.
    """
    try:
        with open(path, "rb") as key_file:
            return key_file.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(secrets.token_hex(32))
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    with open(path, "rb") as key_file:
        return key_file.read().strip()
