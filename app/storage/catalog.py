"""The repositories of the filesystem driver, and its catalog of them.

``<root>/catalog/`` holds an empty file for each repository that holds a
manifest, named for the repository with "/" written as "+", so that the
catalog is listed with one directory read instead of a walk of ``repos/``.
It is built from that walk when a store without it is opened, entered on
each manifest push and pruned when a repository's last manifest goes.
"""

import contextlib
import os
import shutil
import stat
import tempfile
import uuid

from app.storage.collection import MANIFESTS, TAGS
from app.storage.tree import list_folder

CATALOG = "catalog"
# Repository names never hold "+", so it stands for "/" in catalog entries.
CATALOG_SEPARATOR = "+"


class FilesystemCatalog:
    """Repositories and the catalog (mixed into the filesystem driver)."""

    def repository_exists(self, name):
        try:
            return os.path.isdir(self._found_path("repos", name, MANIFESTS))
        except FileNotFoundError:
            return False

    def list_repositories(self):
        entries = os.listdir(self._path(CATALOG))
        return sorted(entry.replace(CATALOG_SEPARATOR, "/") for entry in entries)

    def _holds_manifest_or_tag(self, name):
        """Tell whether a repository has a manifest record or a tag left."""
        if _has_entry(self._path("repos", name, TAGS)):
            return True
        folder = self._path("repos", name, MANIFESTS)
        algorithms = list_folder(folder)
        return any(_has_entry(os.path.join(folder, entry)) for entry in algorithms)

    def _repositories_holding(self, *kinds):
        """Return the names of repositories with any of these folders, sorted."""
        names = []
        repos = self._path("repos")
        for folder, subfolders, _files in os.walk(repos):
            if any(kind in subfolders for kind in kinds):
                names.append(os.path.relpath(folder, repos).replace(os.sep, "/"))
            subfolders[:] = [entry for entry in subfolders if entry[0] != "_"]
        return sorted(names)

    def _record_repository(self, name):
        """Enter ``name`` in the catalog, once."""
        path = self._path(CATALOG, name.replace("/", CATALOG_SEPARATOR))
        if not os.path.exists(path):
            self._write_file(path, b"")

    def _forget_removed_repositories(self):
        """Take out of the catalog the repositories whose folders gc removed."""
        for entry in list_folder(self._path(CATALOG)):
            name = entry.replace(CATALOG_SEPARATOR, "/")
            self._forget_repository_unless(name, self.repository_exists)

    def _forget_repository_unless(self, name, still_listed):
        """Take ``name`` out of the catalog unless ``still_listed(name)`` holds.

        The entry is moved aside before the check, so a push that stores a
        manifest meanwhile either is seen and the entry put back, or finds no
        entry and writes a new one that this never removes.
        """
        if still_listed(name):
            return
        entry = self._path(CATALOG, name.replace("/", CATALOG_SEPARATOR))
        try:
            if stat.S_ISDIR(os.lstat(entry).st_mode):
                return  # no entry this wrote (those are files): left in place
        except FileNotFoundError:
            return
        aside = os.path.join(self.root, "tmp", f"catalog-{uuid.uuid4()}")
        try:
            os.rename(entry, aside)
        except FileNotFoundError:
            return
        if still_listed(name):
            os.replace(aside, entry)
        else:
            os.unlink(aside)

    def _build_catalog(self):
        """Fill ``catalog/`` from a walk of ``repos/``, then rename it into place."""
        folder = tempfile.mkdtemp(dir=os.path.join(self.root, "tmp"))
        try:
            for name in self._repositories_holding(MANIFESTS):
                entry = name.replace("/", CATALOG_SEPARATOR)
                open(os.path.join(folder, entry), "wb").close()
            # Another process may have built it first: then its own stays.
            with contextlib.suppress(OSError):
                os.rename(folder, os.path.join(self.root, CATALOG))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _has_entry(folder):
    """Tell whether a folder exists and holds anything, reading one entry at most."""
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False
