"""What garbage collection needs of the filesystem driver: listings and sweeps.

A sweep never trusts what it saw when it listed. It moves the file aside under
``tmp/``, looks at its modification time again, and puts it back if a request
touched it meanwhile; a request that touches the file while it is aside finds
nothing and fails cleanly instead of relying on a file about to go.
"""

import os
import uuid
from functools import partial

from app.storage.base import StoredItem

# The folders of a repository that hold its manifest and blob records.
MANIFESTS = "_manifests"
BLOBS = "_blobs"


class FilesystemCollection:
    """The collection half of the filesystem driver (mixed into FilesystemStorage)."""

    def list_stored_repositories(self):
        return self._repositories_holding(MANIFESTS, BLOBS)

    def scan_blobs(self):
        yield from _scan(self.list_blobs(), self._blob_path)

    def sweep_blob(self, digest, cutoff):
        return self._sweep_file(self._blob_path(digest), cutoff)

    def list_blob_links(self, name):
        return self._list_records(name, BLOBS)

    def scan_blob_links(self, name):
        path_of = partial(self._record_path, name, BLOBS)
        yield from _scan(self.list_blob_links(name), path_of)

    def sweep_blob_link(self, name, digest, cutoff):
        return self._sweep_file(self._record_path(name, BLOBS, digest), cutoff)

    def scan_manifests(self, name):
        path_of = partial(self._record_path, name, MANIFESTS)
        yield from _scan(self.list_manifests(name), path_of)

    def sweep_manifest(self, name, digest, cutoff):
        return self._sweep_file(self._record_path(name, MANIFESTS, digest), cutoff)

    def sweep_empty_folders(self, cutoff):
        repos = self._path("repos")
        ages = {}
        for folder, _subfolders, _files in os.walk(repos):
            try:
                ages[folder] = os.stat(folder).st_mtime
            except FileNotFoundError:
                continue  # removed since the walk listed it
        removed = 0
        # Deepest first, each judged by its age before the sweep began: removing
        # a subfolder makes its parent look new. A write that made one of these
        # folders (or found it there) just before it went makes it again.
        for folder in sorted(ages, key=len, reverse=True):
            if folder == repos or ages[folder] > cutoff:
                continue
            try:
                os.rmdir(folder)
            except OSError:
                continue  # not empty, or already gone
            removed += 1
        if removed:
            self._forget_removed_repositories()
        return removed

    def _record_path(self, name, kind, digest):
        """Return the path of a repository's record of one kind for a digest."""
        return self._repository_path(name, kind, digest.algorithm, digest.hex)

    def _sweep_file(self, path, cutoff):
        """Remove a file last modified at or before ``cutoff``; tell if it went.

        A link in the file's place is judged and removed itself, never what
        it points to.
        """
        try:
            if os.lstat(path).st_mtime > cutoff:
                return False
            aside = os.path.join(self.root, "tmp", f"sweep-{uuid.uuid4()}")
            os.rename(path, aside)
            modified = os.lstat(aside).st_mtime
        except FileNotFoundError:
            return False  # removed by someone else since the listing
        if modified > cutoff:
            os.replace(aside, path)  # touched between the look and the move
            return False
        os.unlink(aside)
        return True


def _scan(digests, path_of):
    """Yield a StoredItem for each digest whose file is still there."""
    for digest in digests:
        try:
            status = os.lstat(path_of(digest))
        except FileNotFoundError:
            continue  # removed since the listing
        yield StoredItem(digest, status.st_size, status.st_mtime)
