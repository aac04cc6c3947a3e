"""Where the filesystem driver's files are, and how they are read and written.

Names and digests become paths only here. A path is resolved beneath the
storage root: a link leading out of it is refused, a link in a file's own
place is replaced or removed by a write, never followed. What a request reads
must be a regular file, opened without waiting (a FIFO cannot hold a thread),
with openat2(RESOLVE_BENEATH) where the kernel has it, else after a walk of
the path for links. Every file is written under ``tmp/``, synced and renamed
into place.
"""

import contextlib
import ctypes
import errno
import os
import stat
import sys
import tempfile
import weakref

from app.storage.background import hold, release_later, sync
from app.storage.errors import EntryInTheWay, OutsideRoot

# How often a write makes its folder again when garbage collection removed it
# at the same moment; each collection removes a folder at most once.
FOLDER_ATTEMPTS = 8
READ_STEP = 256 * 1024
TOP_FOLDERS = ("blobs", "repos", "uploads", "tmp")


class FilesystemTree:
    """The paths, reads and atomic writes of the driver (mixed into it)."""

    def __init__(self, root):
        self.root = os.path.realpath(root)
        for folder in TOP_FOLDERS:
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        self._beneath = _Beneath(self.root)

    # Paths: the only place where names and digests become file names.

    def _path(self, *parts):
        """Join ``parts`` under the root; OutsideRoot if the result escapes it."""
        path = self._joined(parts)
        resolved = self._resolved(path)
        if resolved is None:
            raise OutsideRoot(detail={"path": os.path.join(*parts)})
        return resolved

    def _joined(self, parts):
        """Join ``parts`` under the root; OutsideRoot if their own text leaves it."""
        path = os.path.normpath(os.path.join(self.root, *parts))
        if not path.startswith(self.root + os.sep):
            raise OutsideRoot(detail={"path": os.path.join(*parts)})
        return path

    def _resolved(self, path):
        """Return ``path`` with the links on its way resolved; None if they leave."""
        if self._links_below_root(path):
            path = os.path.realpath(path)
            if not path.startswith(self.root + os.sep):
                return None
        return path

    def _found_path(self, *parts):
        """Like ``_path``, for a look at what is stored rather than a write.

        A link leading out of the root is as missing as nothing there at all:
        FileNotFoundError. A name that leaves the root by its own text is
        still refused with OutsideRoot.
        """
        path = self._joined(parts)
        resolved = self._resolved(path)
        if resolved is None:
            raise FileNotFoundError(errno.ENOENT, "a link leaves the root", path)
        return resolved

    def _links_below_root(self, path):
        """Tell whether a folder or file on the way from the root is a symlink.

        The root itself is already resolved, so unlike ``os.path.realpath``
        this looks only at the few names below it: it runs on every request.
        """
        start = len(self.root) + 1
        while True:
            end = path.find(os.sep, start)
            try:
                if stat.S_ISLNK(os.lstat(path if end < 0 else path[:end]).st_mode):
                    return True
            except (FileNotFoundError, NotADirectoryError):
                return False  # nothing exists further down to be a link
            if end < 0:
                return False
            start = end + 1

    def _own_path(self, *parts):
        """Return the path of a file's own place, for writing or removing it.

        Only the folders on the way are resolved (OutsideRoot if they lead
        out of the root): a link standing in the file's place is replaced by
        a write and removed by a removal, never followed to what it names.
        """
        folder, entry = os.path.split(self._joined(parts))
        resolved = self._resolved(folder)
        if resolved is None:
            raise OutsideRoot(detail={"path": os.path.join(*parts)})
        return os.path.join(resolved, entry)

    def _blob_path(self, digest):
        """Return the path of a blob's own file (see ``_own_path``)."""
        return self._own_path(*self._blob_parts(digest))

    def _repository_path(self, name, *parts):
        """Return the own place of a file of a repository (see ``_own_path``)."""
        return self._own_path("repos", name, *parts)

    def _blob_parts(self, digest):
        hex_digits = digest.hex
        return ("blobs", digest.algorithm, hex_digits[:2], hex_digits)

    # Reading: what a request finds in the tree, and what counts as missing.

    def _open_stored(self, parts, follow=True):
        """Open a stored file for reading; return its descriptor and its status.

        FileNotFoundError unless a regular file is there: a folder, a FIFO, a
        link loop, a dangling link or a link leading out of the root is as
        missing as no file at all, and so, without ``follow``, is a link in
        the file's own place. The open does not block, so a FIFO cannot hold
        a thread. Where the kernel has openat2 it refuses links leaving the
        root in the same system call; elsewhere the path is walked for links
        first.
        """
        path = self._joined(parts)
        try:
            descriptor = self._beneath.open(path, follow)
            if descriptor is None:
                flags = READ_FLAGS if follow else READ_FLAGS | os.O_NOFOLLOW
                descriptor = os.open(self._walked(path, follow), flags)
        except OSError as error:
            if error.errno not in NOT_A_FILE_ERRORS:
                raise
            raise FileNotFoundError(errno.ENOENT, "not a stored file", path) from None
        try:
            status = os.fstat(descriptor)
        except OSError:
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            os.close(descriptor)
            raise FileNotFoundError(errno.ENOENT, "not a stored file", path)
        return descriptor, status

    def _walked(self, path, follow):
        """Return ``path`` with the links on its way resolved, for a plain open.

        Without ``follow`` the last name is left for the open to refuse if it
        is a link. FileNotFoundError if a link leads out of the root.
        """
        if follow:
            resolved = self._resolved(path)
        else:
            folder, name = os.path.split(path)
            resolved = self._resolved(folder)
            resolved = resolved and os.path.join(resolved, name)
        if resolved is None:
            raise FileNotFoundError(errno.ENOENT, "a link leaves the root", path)
        return resolved

    def _read_stored(self, *parts, follow=True):
        """Return the bytes of a stored file (see ``_open_stored``).

        Tags, manifest records and manifests are read on every pull: this
        takes the few system calls it needs, not open()'s layers.
        """
        descriptor, _status = self._open_stored(parts, follow)
        try:
            chunks = []
            while chunk := os.read(descriptor, READ_STEP):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(descriptor)

    def _stored_status(self, *parts, follow=True):
        """Return a stored file's status; None where ``_open_stored`` finds none."""
        try:
            descriptor, status = self._open_stored(parts, follow)
        except FileNotFoundError:
            return None
        os.close(descriptor)
        return status

    def _touch_stored(self, *files):
        """Set the modification time of stored files to now, if all are there.

        ``files`` are ``(parts, follow)`` pairs for ``_open_stored``. Unless
        it finds every one, none is touched and this answers False, so a
        request refused for what is missing changes nothing. A store that
        cannot be written (mounted read-only, say) still answers.
        """
        descriptors = []
        try:
            for parts, follow in files:
                descriptors.append(self._open_stored(parts, follow)[0])
            for descriptor in descriptors:
                with contextlib.suppress(OSError):
                    os.utime(descriptor)
        except FileNotFoundError:
            return False
        finally:
            for descriptor in descriptors:
                os.close(descriptor)
        return True

    def _stored_entries(self, *parts):
        """Return the sorted entries of a stored folder; none if no folder is there.

        A file, a FIFO or a link loop where the folder should be, or a link
        leading out of the root, holds no entries.
        """
        try:
            return sorted(os.listdir(self._found_path(*parts)))
        except OSError as error:
            if error.errno in MISSING_ERRORS:
                return []
            raise

    # Atomic writes.

    def _temporary_file(self):
        """Return an open temporary file inside the root, for a later rename."""
        return tempfile.NamedTemporaryFile(
            dir=os.path.join(self.root, "tmp"), delete=False
        )

    @contextlib.contextmanager
    def _staged_file(self):
        """Yield an open temporary file (see ``_temporary_file``) to fill and
        install; if the block fails, the file is removed, so that a refused
        request leaves nothing in ``tmp/``."""
        temporary = self._temporary_file()
        try:
            with temporary:
                yield temporary
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary.name)
            raise

    def _check_place(self, path):
        """Raise EntryInTheWay if a folder stands where a file is to be written.

        Anything else there, a file, a FIFO or a link of any kind, a rename
        replaces, as it replaces a file the registry wrote. No folder can be
        made where something that is no folder stands on the way, so that too
        is refused. Returns the status of what is there (not following a
        link), None if nothing is.
        """
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                self._refuse_place(path)
            raise
        if stat.S_ISDIR(status.st_mode):
            self._refuse_place(path)
        return status

    def _refuse_place(self, path):
        entry = os.path.relpath(path, self.root).replace(os.sep, "/")
        raise EntryInTheWay(detail={"entry": entry})

    def _install(self, temporary_path, path):
        """Rename a finished temporary file into place, creating its folder.

        The file's bytes reach the disk before its new name does, and the name
        before this returns, so a crash leaves the old file or the whole new one.
        """
        self._check_place(path)
        sync(temporary_path)
        folder = os.path.dirname(path)
        created = _missing_folders(folder)
        # A blob pushed again replaces itself: the old file is held open, so
        # that its blocks are freed once the new name is durable, after the
        # answer, rather than by the rename.
        replaced = hold(path)
        try:
            for attempt in range(FOLDER_ATTEMPTS):
                try:
                    os.makedirs(folder, exist_ok=True)
                    os.replace(temporary_path, path)
                    break
                except FileNotFoundError:
                    # Garbage collection removed an empty folder on the way; make
                    # it again, fresh, so that collection leaves it alone now.
                    if attempt == FOLDER_ATTEMPTS - 1:
                        raise
                    created += _missing_folders(folder)
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    # Not a folder on the way, or a folder put in the file's
                    # place since the look above.
                    self._refuse_place(path)
            for changed in [folder, *(os.path.dirname(new) for new in created)]:
                sync(changed)
        finally:
            release_later(replaced)

    def _write_file(self, path, data):
        with self._staged_file() as temporary:
            temporary.write(data)
            temporary.close()
            self._install(temporary.name, path)


# Stored files are opened without waiting for a writer (a FIFO would wait).
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
# What opening a path that is not a readable file raises, besides ENOENT:
# EXDEV is openat2's answer to a link leading out of the root.
NOT_A_FILE_ERRORS = frozenset(
    {errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EXDEV}
)
# What listing a folder that is not there, or is no folder, raises.
MISSING_ERRORS = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR})


class _Beneath:
    """Opens files under a folder with openat2(2) and RESOLVE_BENEATH.

    ``open`` returns None where the kernel lacks openat2 (before Linux 5.6),
    and the caller checks the path for links itself.
    """

    def __init__(self, folder):
        self.folder = folder
        self.descriptor = None
        # The same two requests every time: read-only, not blocking, beneath
        # folder; the one that does not follow refuses a link in the last place.
        self.how = {
            True: _OpenHow(READ_FLAGS, 0, RESOLVE_BENEATH),
            False: _OpenHow(READ_FLAGS | os.O_NOFOLLOW, 0, RESOLVE_BENEATH),
        }
        self.how_references = {
            follow: ctypes.byref(how) for follow, how in self.how.items()
        }
        self.how_size = ctypes.sizeof(_OpenHow)
        if _OPENAT2 is not None:
            self.descriptor = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            weakref.finalize(self, os.close, self.descriptor)

    def open(self, path, follow=True):
        """Open ``path`` (under the folder) for reading, following a link in its
        last place only with ``follow``; OSError EXDEV if a link leads out."""
        if self.descriptor is None:
            return None
        relative = path[len(self.folder) + 1 :].encode()
        how = self.how_references[follow]
        descriptor = _OPENAT2(
            _SYS_OPENAT2, self.descriptor, relative, how, self.how_size
        )
        if descriptor >= 0:
            return descriptor
        number = ctypes.get_errno()
        if number in (errno.ENOSYS, errno.EPERM):
            self.descriptor = None  # not here after all (a seccomp filter, say)
            return None
        raise OSError(number, os.strerror(number), path)


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


# openat2(2) has the same number on every architecture Linux added it for.
_SYS_OPENAT2 = 437
RESOLVE_BENEATH = 0x08


def _find_openat2():
    """Return a caller of the openat2 system call, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (AttributeError, OSError):
        return None
    syscall.restype = ctypes.c_long
    how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, RESOLVE_BENEATH)
    probe = syscall(_SYS_OPENAT2, -100, b".", ctypes.byref(how), ctypes.sizeof(how))
    if probe < 0:
        return None
    os.close(probe)
    return syscall


_OPENAT2 = _find_openat2()


def _missing_folders(folder):
    """Return ``folder`` and those of its parents that do not exist yet."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def list_folder(folder):
    """Return the sorted entries of a folder; none if it does not exist."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
