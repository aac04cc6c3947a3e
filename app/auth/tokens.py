"""Access tokens: scopes, grants, and the signed form clients carry.

A token is an itsdangerous-signed, timestamped grant::

    {"sub": <account or "">, "aud": <service>,
     "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}]}
"""

import os
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TOKEN_SALT = "registry-access-token"
KNOWN_ACTIONS = ("pull", "push", "delete", "*")
MAX_SCOPES = 64


@dataclass(frozen=True)
class Scope:
    """What a client asks for: actions on one resource."""

    type: str
    name: str
    actions: tuple

    def __str__(self):
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text):
    """Return the Scope that ``type:name:actions`` spells, or None if it does not."""
    resource_type, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not resource_type or not name:
        return None
    wanted = tuple(action for action in actions.split(",") if action in KNOWN_ACTIONS)
    return Scope(resource_type, name, wanted)


def parse_scopes(values):
    """Return the Scopes in repeated or space-separated ``scope`` parameters."""
    texts = [text for value in values for text in value.split()]
    scopes = (parse_scope(text) for text in texts[:MAX_SCOPES])
    return [scope for scope in scopes if scope is not None]


class TokenSigner:
    """Signs grants into tokens and checks tokens back into grants."""

    def __init__(self, key, service, expiry):
        self.serializer = URLSafeTimedSerializer(key, salt=TOKEN_SALT)
        self.service = service
        self.expiry = expiry

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
        try:
            payload = self.serializer.loads(token, max_age=self.expiry)
        except (BadSignature, SignatureExpired, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("aud") != self.service:
            return None
        return payload


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
