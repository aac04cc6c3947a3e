"""Sources: a tar (plain or compressed) or a folder, read by member path.

``open_source`` gives either as an archive with the same three methods:
``exists``, ``size`` and ``open`` of a file by its path inside it. The helpers
here read the small JSON documents an archive holds and the digests it spells.
"""

import contextlib
import os
import posixpath
import re
import tarfile

from app.documents import DocumentError, parse_document
from app.errors import RegistryError
from app.images.errors import ImageImportError
from app.reference import compute_digest, parse_digest

# JSON files are read whole; anything larger is not metadata.
MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
MAX_LINK_HOPS = 8
# Files of an archive named after their content: blobs/<algorithm>/<hex>, and
# the config of the old docker-save layout, <hex>.json.
BLOB_PATH = re.compile(r"blobs/([a-z0-9]+)/([a-f0-9]+)")
LEGACY_CONFIG_PATH = re.compile(r"([a-f0-9]{64})\.json")


@contextlib.contextmanager
def open_source(source):
    """Yield the archive at ``source``: a folder, or a tar of any compression."""
    if os.path.isdir(source):
        yield _Folder(source)
        return
    if not os.path.exists(source):
        raise ImageImportError(f"no such file or folder: {source}")
    with _open_tar(source) as tar:
        yield _Tarball(tar)


def _open_tar(source):
    """Open a tar of any compression, or say that ``source`` is not one."""
    try:
        return tarfile.open(source, "r:*")
    except tarfile.ReadError:
        message = f"{source} is neither an image folder nor a readable tar archive"
        raise ImageImportError(message) from None


def member_path(name):
    """Return the normalized path of an archive member, refusing escapes."""
    path = posixpath.normpath(name)
    if path.startswith(("/", "../")) or path in (".", ".."):
        raise ImageImportError(f"the archive names an unsafe path: {name!r}")
    return path


class _Folder:
    """The files of a folder: an OCI layout, or an unpacked docker-save tarball."""

    def __init__(self, root):
        self.root = root

    def exists(self, path):
        """Tell whether the folder holds a file at ``path``."""
        return os.path.isfile(self._path(path))

    def size(self, path):
        """Return the size of the file at ``path``."""
        if not self.exists(path):
            raise ImageImportError(f"the folder has no {path}")
        return os.path.getsize(self._path(path))

    def open(self, path):
        """Return the file at ``path``, open for binary reading."""
        self.size(path)
        return open(self._path(path), "rb")

    def _path(self, path):
        return os.path.join(self.root, *member_path(path).split("/"))


class _Tarball:
    """The members of a tar, found by path, links followed inside the tar."""

    def __init__(self, tar):
        self.tar = tar
        members = tar.getmembers()
        self.members = {posixpath.normpath(info.name): info for info in members}

    def exists(self, path):
        """Tell whether the tar has a member at ``path``."""
        return member_path(path) in self.members

    def size(self, path):
        """Return the size of the file at ``path``."""
        return self._resolve(member_path(path)).size

    def open(self, path):
        """Return the file at ``path``, open for binary reading."""
        return self.tar.extractfile(self._resolve(member_path(path)))

    def _resolve(self, path):
        """Return the regular file member at ``path``, following links."""
        for _hop in range(MAX_LINK_HOPS):
            info = self.members.get(path)
            if info is None:
                raise ImageImportError(f"the archive has no {path}")
            if info.isfile():
                return info
            if not (info.issym() or info.islnk()):
                raise ImageImportError(f"{path} in the archive is not a file")
            path = _link_target(info)
        raise ImageImportError(f"{path} in the archive is a chain of links")


def _link_target(info):
    """Return the member path a symbolic or hard link points to."""
    if info.islnk():
        return posixpath.normpath(info.linkname)
    folder = posixpath.dirname(posixpath.normpath(info.name))
    return posixpath.normpath(posixpath.join(folder, info.linkname))


def read_document(archive, path):
    """Return the (small) file at ``path`` as bytes."""
    if archive.size(path) > MAX_DOCUMENT_SIZE:
        raise ImageImportError(f"{path} is too large to be image metadata")
    with archive.open(path) as stream:
        return stream.read()


def load_json(data, path):
    """Return the JSON document ``data`` holds; ``path`` names it in errors."""
    try:
        return parse_document(data)
    except DocumentError as error:
        raise ImageImportError(
            f"{path} in the archive is not valid JSON: {error}"
        ) from None


def archive_digest(text, origin):
    """Return the Digest an archive's metadata spells, or say where it is bad."""
    try:
        return parse_digest(text if isinstance(text, str) else None)
    except RegistryError:
        raise ImageImportError(f"{origin}: {text!r} is not a valid digest") from None


def _named_digest(path):
    """Return the Digest a file is named after, or None if its name is no digest."""
    if match := BLOB_PATH.fullmatch(path):
        return archive_digest(f"{match[1]}:{match[2]}", path)
    if match := LEGACY_CONFIG_PATH.fullmatch(path):
        return archive_digest(f"sha256:{match[1]}", path)
    return None


def check_named_content(path, data):
    """Check bytes against the digest their file is named after, if it is."""
    expected = _named_digest(path)
    if expected and compute_digest(data, expected.algorithm) != expected:
        raise ImageImportError(f"{path} in the archive does not match its digest")
