"""What garbage collection needs of the filesystem driver: listings and sweeps.

A sweep never trusts what it saw when it listed. It moves the file aside under
``tmp/``, looks at its modification time again, and puts it back if a request
touched it meanwhile; a request that touches the file while it is aside finds
nothing and fails cleanly instead of relying on a file about to go.

What the registry never writes in a file's place (a folder, a FIFO...) is
listed as odd and never moved; a link there is removed itself, never what it
names, and one leading out of the root is never followed.
"""

import errno
import os
import stat
import uuid
from functools import partial

from app.storage.base import StoredItem
from app.storage.errors import OutsideRoot

# The folders of a repository that hold its manifest and blob records, and
# its tags.
MANIFESTS = "_manifests"
BLOBS = "_blobs"
TAGS = "_tags"


class FilesystemCollection:
    """The collection half of the filesystem driver (mixed into FilesystemStorage)."""

    def list_stored_repositories(self):
        return self._repositories_holding(MANIFESTS, BLOBS)

    def scan_blobs(self):
        yield from _scan(self.list_blobs(), self._blob_path)

    def sweep_blob(self, digest, cutoff):
        return self._sweep_file(partial(self._blob_path, digest), cutoff)

    def list_blob_links(self, name):
        return self._list_records(name, BLOBS)

    def scan_blob_links(self, name):
        path_of = partial(self._record_path, name, BLOBS)
        yield from _scan(self.list_blob_links(name), path_of)

    def sweep_blob_link(self, name, digest, cutoff):
        return self._sweep_file(partial(self._record_path, name, BLOBS, digest), cutoff)

    def scan_manifests(self, name):
        path_of = partial(self._record_path, name, MANIFESTS)
        yield from _scan(self.list_manifests(name), path_of)

    def sweep_manifest(self, name, digest, cutoff):
        path_of = partial(self._record_path, name, MANIFESTS, digest)
        return self._sweep_file(path_of, cutoff)

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
        """Return the path of a repository's record of one kind for a digest.

        As for a blob's file, only the folders on the way are resolved (and
        refused if they lead out of the root): a link in the record's own place
        is judged and removed itself.
        """
        return self._repository_path(name, kind, digest.algorithm, digest.hex)

    def _sweep_file(self, path_of, cutoff):
        """Remove a file last modified at or before ``cutoff``; tell if it went.

        ``path_of()`` returns the file's path. A link in the file's place is
        judged and removed itself, never what it points to; anything else
        that is not a file (a folder, a FIFO) is left where it is.
        """
        try:
            path = path_of()
            status = os.lstat(path)
            if odd_kind(status) or status.st_mtime > cutoff:
                return False
            aside = os.path.join(self.root, "tmp", f"sweep-{uuid.uuid4()}")
            os.rename(path, aside)
            status = os.lstat(aside)
        except OutsideRoot:
            return False  # a folder on the way leads out of the root
        except OSError as error:
            if error.errno in GONE_ERRORS:
                return False  # removed by someone else since the listing
            raise
        if odd_kind(status) or status.st_mtime > cutoff:
            # Touched, or replaced by something else, between the look and the move.
            os.replace(aside, path)
            return False
        os.unlink(aside)
        return True


# What looking at a path whose file, or a folder on the way, is gone raises.
GONE_ERRORS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
ODD_KINDS = {
    stat.S_IFDIR: "folder",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "device",
    stat.S_IFBLK: "device",
}


def odd_kind(status):
    """Name what an lstat ``status`` shows unless it is a file or a link."""
    kind = stat.S_IFMT(status.st_mode)
    if kind in (stat.S_IFREG, stat.S_IFLNK):
        return None
    return ODD_KINDS.get(kind, "other")


def _scan(digests, path_of):
    """Yield a StoredItem for each digest whose file (or odd entry) is still there."""
    for digest in digests:
        try:
            status = os.lstat(path_of(digest))
        except OutsideRoot:
            continue  # a folder on the way leads out of the root
        except OSError as error:
            if error.errno in GONE_ERRORS:
                continue  # removed since the listing
            raise
        odd = odd_kind(status)
        size = 0 if odd else status.st_size
        yield StoredItem(digest, size, status.st_mtime, odd)
