"""Shortcuts to what the running application holds."""

from flask import current_app

from app.errors import Unsupported


def get_storage():
    """Return the storage of the application handling this request or command."""
    return current_app.extensions["registry_storage"]


def require_deletes_enabled():
    """Raise Unsupported (405) when the configuration switches deletes off."""
    if not current_app.config["REGISTRY_DELETE_ENABLED"]:
        raise Unsupported("deletes are disabled on this registry")
