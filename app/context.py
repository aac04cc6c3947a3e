"""Shortcuts to what the running application holds."""

from flask import current_app


def get_storage():
    """Return the storage of the application handling this request or command."""
    return current_app.extensions["registry_storage"]
