"""Storage of blobs, manifests and tags: the contract and its drivers.

Nothing outside this package builds a path. Views and the import code speak
to a ``Storage`` through the methods of the contract in ``base``, with names,
tags and digests already validated by ``app.reference``.
"""

from app.storage.base import Manifest, Storage

__all__ = ["Manifest", "Storage", "open_storage"]


def open_storage(config):
    """Return the storage that a configuration names."""
    from app.storage.filesystem import FilesystemStorage

    return FilesystemStorage(config["REGISTRY_STORAGE_ROOT"])
