"""The filesystem driver: a flat tree that a person can read with ``ls``.

::

    <root>/blobs/<algorithm>/<first two hex>/<hex>       content (manifests too)
    <root>/repos/<name>/_manifests/<algorithm>/<hex>     holds that manifest;
                                                         the file is its media type
    <root>/repos/<name>/_tags/<tag>                      the digest the tag points to
    <root>/repos/<name>/_blobs/<algorithm>/<hex>         may serve that blob (empty)
    <root>/repos/<name>/_referrers/<algorithm>/<hex>/    manifests whose subject is
        .../<algorithm>-<referrer hex>                   that digest, one JSON
                                                         descriptor each
    <root>/catalog/<name, "/" written as "+">            an empty file for each
                                                         repository that holds
                                                         a manifest
    <root>/uploads/<id>/                                 an upload in progress
    <root>/tmp/                                          files being written

Repository folders begin with a letter or digit, so the ``_`` folders of one
repository never collide with a nested repository (``a/_tags`` is not a name).
Files are written under ``tmp/`` and renamed into place (``app.storage.tree``
turns names into paths, reads what is stored and writes it); repositories
and ``catalog/`` are kept by ``app.storage.catalog``, and garbage collection's
scans and sweeps are in ``app.storage.collection``.
"""

import errno
import json
import os
import stat
import time

from app.documents import DocumentError, parse_document
from app.errors import DigestInvalid
from app.reference import Digest, parse_digest
from app.storage.background import hold, release_later
from app.storage.base import Manifest, Storage
from app.storage.catalog import CATALOG, FilesystemCatalog
from app.storage.collection import BLOBS, MANIFESTS, TAGS, FilesystemCollection
from app.storage.copying import copy_hashed
from app.storage.errors import (
    BlobNotFound,
    DigestMismatch,
    ManifestNotFound,
    RepositoryNotFound,
    SizeMismatch,
)
from app.storage.tree import MISSING_ERRORS, FilesystemTree, list_folder
from app.storage.uploads import FilesystemUploads

REFERRERS = "_referrers"
SETTLED_NANOSECONDS = 2 * 10**9
CACHED_TAG_LISTS = 4096


class FilesystemStorage(
    FilesystemTree, FilesystemCatalog, FilesystemCollection, FilesystemUploads, Storage
):
    """Storage in a directory tree rooted at ``root``."""

    def __init__(self, root):
        FilesystemTree.__init__(self, root)
        self._tag_lists = {}  # tags folder -> (its mtime, its sorted entries)
        if not os.path.isdir(os.path.join(self.root, CATALOG)):
            self._build_catalog()

    def __repr__(self):
        return f"FilesystemStorage({self.root!r})"

    # Blobs. The registry writes a blob only as a regular file in its own
    # place (see ``_blob_path``); a link there, even to another blob, would
    # serve the bytes of another digest, so it counts as no blob at all.

    def has_blob(self, digest):
        return self._stored_status(*self._blob_parts(digest), follow=False) is not None

    def blob_size(self, digest):
        status = self._stored_status(*self._blob_parts(digest), follow=False)
        if status is None:
            raise BlobNotFound(detail={"digest": str(digest)})
        return status.st_size

    def open_blob(self, digest):
        try:
            descriptor, _status = self._open_stored(
                self._blob_parts(digest), follow=False
            )
        except FileNotFoundError:
            raise BlobNotFound(detail={"digest": str(digest)}) from None
        return os.fdopen(descriptor, "rb")

    def read_blob(self, digest):
        try:
            return self._read_stored(*self._blob_parts(digest), follow=False)
        except FileNotFoundError:
            raise BlobNotFound(detail={"digest": str(digest)}) from None

    def write_blob(self, stream, digest=None, size=None, progress=None):
        if digest is not None:
            self._check_place(self._blob_path(digest))  # before the bytes come
        algorithm = digest.algorithm if digest else "sha256"
        hasher = Digest(algorithm, "").hasher()
        with self._staged_file() as temporary:
            written = copy_hashed(stream, temporary, hasher, progress)
            actual = Digest(algorithm, hasher.hexdigest())
            _check_content(actual, written, digest, size)
            temporary.close()
            self._install(temporary.name, self._blob_path(actual))
        return actual

    def delete_blob(self, digest):
        path = self._blob_path(digest)
        held = hold(path)  # its blocks are freed after the answer
        try:
            if not _remove_file(path):
                raise BlobNotFound(detail={"digest": str(digest)})
        finally:
            release_later(held)

    def list_blobs(self):
        digests = []
        for algorithm in list_folder(self._path("blobs")):
            for prefix in self._stored_entries("blobs", algorithm):
                for entry in self._stored_entries("blobs", algorithm, prefix):
                    digests.append(_stored_digest(algorithm, entry))
        return [digest for digest in digests if digest is not None]

    def check_access(self):
        os.listdir(self._path("blobs"))
        with self._staged_file() as probe:
            probe.write(b"ready")
        os.unlink(probe.name)

    # Repository blob links.

    def link_blob(self, name, digest):
        # A file in the link's own place is touched; a link or a FIFO there is
        # replaced by a file, and a folder refused before anything is touched.
        path = self._record_path(name, BLOBS, digest)
        status = self._check_place(path)
        if not self._touch_stored((self._blob_parts(digest), False)):
            raise BlobNotFound(detail={"digest": str(digest)})
        if status is None or not stat.S_ISREG(status.st_mode) or not _touch(path):
            self._write_file(path, b"")

    def check_blob_writable(self, name, digest):
        self._check_place(self._blob_path(digest))
        self._check_place(self._record_path(name, BLOBS, digest))

    def touch_blob(self, name, digest):
        record = _record_parts(name, BLOBS, digest)
        return self._touch_stored((record, True), (self._blob_parts(digest), False))

    def repository_has_blob(self, name, digest):
        record = self._stored_status(*_record_parts(name, BLOBS, digest))
        return record is not None and self.has_blob(digest)

    def unlink_blob(self, name, digest):
        if not self._remove_record(name, BLOBS, digest):
            raise BlobNotFound(detail={"digest": str(digest)})

    # Manifests and tags.

    def _remove_record(self, name, kind, digest):
        """Remove a record if it reads as one; tell whether it went.

        A link in the record's place is removed itself, never what it names.
        """
        record = _record_parts(name, kind, digest)
        if self._stored_status(*record) is None:
            return False
        return _remove_file(self._record_path(name, kind, digest))

    def put_manifest(self, name, body, media_type, digest=None):
        if digest is not None:  # refused before anything is written
            self.check_manifest_writable(name, digest)
        digest = self.write_blob([body], digest)
        path = self._record_path(name, MANIFESTS, digest)
        self._write_file(path, media_type.encode())
        self._record_repository(name)
        return digest

    def get_manifest(self, name, digest):
        try:
            record = self._read_stored(*_record_parts(name, MANIFESTS, digest))
            media_type = _media_type(record)
            body = self.read_blob(digest)
        except (FileNotFoundError, ValueError, BlobNotFound):
            raise ManifestNotFound(detail={"digest": str(digest)}) from None
        return Manifest(body, media_type, digest)

    def list_manifests(self, name):
        return self._list_records(name, MANIFESTS)

    def _list_records(self, name, kind):
        """Return the Digests naming the records of one kind in a repository."""
        digests = []
        for algorithm in self._stored_entries("repos", name, kind):
            for entry in self._stored_entries("repos", name, kind, algorithm):
                digests.append(_stored_digest(algorithm, entry))
        return [digest for digest in digests if digest is not None]

    def has_manifest(self, name, digest):
        record = self._stored_status(*_record_parts(name, MANIFESTS, digest))
        return record is not None and self.has_blob(digest)

    def touch_manifest(self, name, digest):
        record = _record_parts(name, MANIFESTS, digest)
        return self._touch_stored((record, True), (self._blob_parts(digest), False))

    def delete_manifest(self, name, digest):
        if not self._remove_record(name, MANIFESTS, digest):
            raise ManifestNotFound(detail={"digest": str(digest)})
        # The catalog lists repositories holding a manifest: this may have been
        # the last one.
        self._forget_repository_unless(name, self._holds_manifest_or_tag)

    def tag_manifest(self, name, tag, digest):
        self._write_file(self._repository_path(name, TAGS, tag), str(digest).encode())

    def check_manifest_writable(self, name, digest, tag=None):
        self._check_place(self._blob_path(digest))
        record = self._record_path(name, MANIFESTS, digest)
        self._check_place(record)
        if tag is not None:
            self._check_place(self._repository_path(name, TAGS, tag))

    def resolve_tag(self, name, tag):
        try:
            link = self._read_stored("repos", name, TAGS, tag)
            return parse_digest(link.decode().strip())
        except (FileNotFoundError, UnicodeDecodeError, DigestInvalid):
            raise ManifestNotFound(detail={"tag": tag}) from None

    def tag_pushed_at(self, name, tag):
        status = self._stored_status("repos", name, TAGS, tag)
        if status is None:
            raise ManifestNotFound(detail={"tag": tag})
        return status.st_mtime

    def list_tags(self, name):
        if not self.repository_exists(name):
            raise RepositoryNotFound(detail={"name": name})
        try:
            folder = self._found_path("repos", name, TAGS)
            status = os.stat(folder)
        except OSError as error:
            if error.errno in MISSING_ERRORS:
                return []
            raise
        if not stat.S_ISDIR(status.st_mode):
            return []  # no folder of tags, but a file or a FIFO in its place
        changed = status.st_mtime_ns
        cached = self._tag_lists.get(folder)
        if cached is not None and cached[0] == changed:
            return list(cached[1])
        tags = _list_files(folder)
        # A folder changed in the last moments may change again within the
        # same mtime tick; only a listing taken well after its mtime is kept.
        if time.time_ns() - changed > SETTLED_NANOSECONDS:
            if len(self._tag_lists) >= CACHED_TAG_LISTS:
                self._tag_lists.clear()
            self._tag_lists[folder] = (changed, tags)
        return list(tags)

    def find_tags(self, name, digest):
        tags = []
        for tag in self._stored_entries("repos", name, TAGS):
            try:
                if self.resolve_tag(name, tag) == digest:
                    tags.append(tag)
            except ManifestNotFound:
                continue  # removed by another request since the listing
        return tags

    def delete_tag(self, name, tag):
        # Only a tag that reads as one is removed (see ``resolve_tag``): one
        # that a pull finds missing is missing here too, and left as it is.
        # A link in the tag's place is removed itself, not what it names.
        self.resolve_tag(name, tag)
        if not _remove_file(self._repository_path(name, TAGS, tag)):
            raise ManifestNotFound(detail={"tag": tag})

    def untag_manifest(self, name, digest):
        removed = []
        for tag in self.find_tags(name, digest):
            try:
                self.delete_tag(name, tag)
            except ManifestNotFound:
                continue
            removed.append(tag)
        return removed

    # Referrers.

    def _referrers_path(self, name, subject, *parts):
        return self._repository_path(
            name, REFERRERS, subject.algorithm, subject.hex, *parts
        )

    def add_referrer(self, name, subject, descriptor):
        digest = parse_digest(descriptor["digest"])
        path = self._referrers_path(name, subject, f"{digest.algorithm}-{digest.hex}")
        self._write_file(path, json.dumps(descriptor, sort_keys=True).encode())

    def list_referrers(self, name, subject):
        descriptors = []
        folder = ("repos", name, REFERRERS, subject.algorithm, subject.hex)
        for entry in self._stored_entries(*folder):
            try:
                descriptor = parse_document(self._read_stored(*folder, entry))
            except FileNotFoundError:
                continue  # removed by another request since the listing
            except DocumentError:
                continue  # not a record this wrote: left out, as if missing
            if isinstance(descriptor, dict):
                descriptors.append(descriptor)
        return descriptors

    def remove_referrer(self, name, subject, digest):
        entry = f"{digest.algorithm}-{digest.hex}"
        return _remove_file(self._referrers_path(name, subject, entry))


def _record_parts(name, kind, digest):
    """Return the parts of the path of a repository's record of one kind."""
    return ("repos", name, kind, digest.algorithm, digest.hex)


def _media_type(record):
    """Return the media type a manifest record holds; ValueError unless it is one.

    The registry writes the type alone. Blanks around it are dropped, as
    around a tag's digest; a record holding anything else (a line break
    within, bytes that are no text) could not be sent as a header.
    """
    media_type = record.decode("ascii").strip()
    if not media_type or not media_type.isprintable():
        raise ValueError(f"not a media type: {media_type!r}")
    return media_type


def _list_files(folder):
    """Return the sorted names of a folder's files and links; none if it is gone.

    A folder, a FIFO or a device in it is never something the registry wrote
    there, and reads as missing: it is left out (the folder listing tells the
    kind of each entry, so this costs no system call per entry).
    """
    try:
        with os.scandir(folder) as entries:
            return sorted(
                entry.name
                for entry in entries
                if entry.is_file(follow_symlinks=False) or entry.is_symlink()
            )
    except FileNotFoundError:
        return []


def _stored_digest(algorithm, hex_digest):
    """Return the Digest a file name in the tree spells; None for a stray file."""
    try:
        return parse_digest(f"{algorithm}:{hex_digest}")
    except DigestInvalid:
        return None


def _remove_file(path):
    """Remove the entry at ``path`` unless it is a folder; tell if it went."""
    try:
        os.unlink(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return False
        raise
    return True


def _touch(path):
    """Set a file's modification time to now; tell whether the file exists.

    A store that cannot be written (mounted read-only, say) still answers.
    """
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.isfile(path)
    return True


def _check_content(actual, written, digest, size):
    """Raise if content does not have the digest and size it was declared with."""
    if size is not None and written != size:
        raise SizeMismatch(detail={"expected": size, "received": written})
    if digest is not None and actual != digest:
        raise DigestMismatch(detail={"expected": str(digest), "actual": str(actual)})
