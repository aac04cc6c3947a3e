"""Uploads in progress, kept on disk so any worker can take the next request.

::

    <root>/uploads/<id>/data    the bytes received so far
    <root>/uploads/<id>/info    JSON: the repository the upload is for
    <root>/uploads/<id>/lock    held (flock) while a request appends or commits

Each worker remembers the running hash of uploads it appended to, so the
common case (one client streaming to one worker) hashes every byte once; when
a chunk lands elsewhere the hash is recomputed from ``data`` at commit time.
A request appending a chunk answers once the chunk is written; its last blocks
may still be hashing while the next chunk arrives.
"""

import errno
import fcntl
import json
import os
import shutil
import stat
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import contextmanager

from app.reference import Digest
from app.storage.background import hold, release_later
from app.storage.base import StoredItem
from app.storage.collection import odd_kind
from app.storage.copying import Hashing, copy_hashed, copy_hashing
from app.storage.errors import DigestMismatch, UploadNotFound, UploadRangeMismatch

BLOCK_SIZE = 1024 * 1024
HASH_ALGORITHM = "sha256"
REMEMBERED_HASHES = 128


class RunningHashes:
    """A small per-process memory of ``upload id -> (size appended, Hashing)``."""

    def __init__(self):
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def take(self, upload_id, size):
        """Return the Hashing fed exactly ``size`` bytes, or None."""
        with self.lock:
            entry = self.entries.pop(upload_id, None)
        if entry is None and size == 0:
            return Hashing(Digest(HASH_ALGORITHM, "").hasher())
        if entry is not None and entry[0] == size:
            return entry[1]
        return None

    def keep(self, upload_id, size, hashing):
        with self.lock:
            self.entries[upload_id] = (size, hashing)
            while len(self.entries) > REMEMBERED_HASHES:
                self.entries.popitem(last=False)


class FilesystemUploads:
    """The upload half of the filesystem driver (mixed into FilesystemStorage)."""

    running_hashes = RunningHashes()

    def _upload_path(self, upload_id, *parts):
        try:
            upload_id = str(uuid.UUID(upload_id))
        except (ValueError, TypeError, AttributeError):
            raise UploadNotFound(detail={"upload": upload_id}) from None
        return self._own_path("uploads", upload_id, *parts)

    def create_upload(self, name):
        upload_id = str(uuid.uuid4())
        folder = self._upload_path(upload_id)
        with self._staged_file() as temporary:
            temporary.write(json.dumps({"name": name}).encode())
            temporary.close()
            os.makedirs(folder)
            try:
                # Every file exists from the start, so a refused request adds none.
                for part in ("data", "lock"):
                    open(os.path.join(folder, part), "wb").close()
                os.replace(temporary.name, os.path.join(folder, "info"))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        return upload_id

    def upload_size(self, name, upload_id):
        self._check_upload(name, upload_id)
        try:
            return _data_status(self._upload_path(upload_id, "data")).st_size
        except FileNotFoundError:
            raise UploadNotFound(detail={"upload": upload_id}) from None

    def append_upload(self, name, upload_id, stream, start=None):
        with self._locked_upload(name, upload_id):
            data_path = self._upload_path(upload_id, "data")
            size = os.stat(data_path).st_size
            if start is not None and start != size:
                raise UploadRangeMismatch(detail={"expected": size, "received": start})
            hashing = self.running_hashes.take(upload_id, size)
            size = _append(data_path, stream, size, hashing)
            if hashing is not None:
                self.running_hashes.keep(upload_id, size, hashing)
            return size

    def commit_upload(self, name, upload_id, digest):
        with self._locked_upload(name, upload_id):
            data_path = self._upload_path(upload_id, "data")
            actual = self._hash_upload(upload_id, data_path, digest.algorithm)
            if actual != digest:
                raise DigestMismatch(
                    detail={"expected": str(digest), "actual": str(actual)}
                )
            self._install(data_path, self._blob_path(actual))
            # The bytes may have arrived long ago: the blob is new to a collection.
            os.utime(self._blob_path(actual))
            shutil.rmtree(self._upload_path(upload_id), ignore_errors=True)
        return actual

    def cancel_upload(self, name, upload_id):
        with self._locked_upload(name, upload_id):
            data = hold(self._upload_path(upload_id, "data"))
            shutil.rmtree(self._upload_path(upload_id), ignore_errors=True)
            release_later(data)

    def expire_uploads(self, max_age):
        cutoff = time.time() - max_age
        expired = [
            item.key
            for item in self.scan_uploads()
            if item.odd is None and item.modified < cutoff
        ]
        uploads = self._path("uploads")
        for upload_id in expired:
            # Joined, not resolved: only the upload's own folder goes.
            shutil.rmtree(os.path.join(uploads, upload_id), ignore_errors=True)
        with os.scandir(self._path("tmp")) as entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # renamed into place since the listing
        return expired

    def scan_uploads(self):
        """Yield a StoredItem per upload; anything in ``uploads/`` that is not
        an upload's folder (a file, a FIFO, a link, a folder not named as an
        upload) is yielded as odd, with its own modification time."""
        with os.scandir(self._path("uploads")) as entries:
            for entry in entries:
                try:
                    odd = _odd_upload(entry)
                    if odd:
                        modified = entry.stat(follow_symlinks=False).st_mtime
                        yield StoredItem(entry.name, 0, modified, odd)
                        continue
                    modified = _last_activity(entry.path)
                except FileNotFoundError:
                    continue  # committed or cancelled since the listing
                size = _file_size(os.path.join(entry.path, "data"))
                yield StoredItem(entry.name, size, modified)

    def _check_upload(self, name, upload_id):
        """Raise UploadNotFound unless the upload exists and is for ``name``."""
        try:
            with open(self._upload_path(upload_id, "info"), "rb") as info:
                owner = json.load(info).get("name")
        except (FileNotFoundError, ValueError):
            raise UploadNotFound(detail={"upload": upload_id}) from None
        if owner != name:
            raise UploadNotFound(detail={"upload": upload_id})

    @contextmanager
    def _locked_upload(self, name, upload_id):
        """Hold the upload's lock; UploadNotFound if the upload is gone."""
        self._check_upload(name, upload_id)
        try:
            with open(self._upload_path(upload_id, "lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                _data_status(self._upload_path(upload_id, "data"))
                yield
        except FileNotFoundError:
            raise UploadNotFound(detail={"upload": upload_id}) from None

    def _hash_upload(self, upload_id, data_path, algorithm):
        """Return the Digest of an upload's bytes, from memory when possible."""
        size = os.stat(data_path).st_size
        hashing = self.running_hashes.take(upload_id, size)
        hasher = None
        if hashing is not None and hashing.name == algorithm:
            try:
                hasher = hashing.result()
            except Exception:
                hasher = None  # hashed wrong: hash the bytes on disk instead
        if hasher is None:
            hasher = Digest(algorithm, "").hasher()
            with open(data_path, "rb") as data:
                while block := data.read(BLOCK_SIZE):
                    hasher.update(block)
        return Digest(algorithm, hasher.hexdigest())


def _append(data_path, stream, size, hashing):
    """Append a stream to the upload's data; on any failure, cut back to ``size``.

    ``hashing``, if not None, is fed the stream's bytes (in the background).
    """
    with open(data_path, "r+b") as data:
        data.seek(size)
        try:
            if hashing is None:
                copy_hashed(stream, data)
            else:
                copy_hashing(stream, data, hashing)
        except BaseException:
            data.truncate(size)
            raise
        return data.tell()


def _data_status(path):
    """Return the status of an upload's data; FileNotFoundError unless a file.

    The registry writes it as a regular file: a link in its place (to another
    upload's bytes, say) is not followed, and the upload reads as gone.
    """
    status = os.lstat(path)
    if not stat.S_ISREG(status.st_mode):
        raise FileNotFoundError(errno.ENOENT, "not an upload's data", path)
    return status


def _file_size(path):
    """Return a file's size; 0 if it is gone, was never written or is no file."""
    try:
        status = os.lstat(path)
    except OSError:
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _odd_upload(entry):
    """Name what an entry of ``uploads/`` is unless it is an upload's folder."""
    status = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(status.st_mode):
        return "link"
    if not stat.S_ISDIR(status.st_mode):
        return odd_kind(status) or "file"
    try:
        if str(uuid.UUID(entry.name)) == entry.name:
            return None
    except ValueError:
        pass
    return "folder"


def _last_activity(folder):
    """Return the newest modification time of anything in an upload's folder."""
    times = [os.stat(folder).st_mtime]
    with os.scandir(folder) as entries:
        for entry in entries:
            times.append(entry.stat(follow_symlinks=False).st_mtime)
    return max(times)
