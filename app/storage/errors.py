"""What storage reports when a request cannot be served from the tree."""


class StorageError(Exception):
    """Base of every error storage raises; ``detail`` says what was asked for."""

    def __init__(self, detail=None):
        super().__init__(detail)
        self.detail = detail


class BlobNotFound(StorageError):
    """No such blob in the store, or not linked into the repository."""


class ManifestNotFound(StorageError):
    """No such manifest or tag in the repository."""


class RepositoryNotFound(StorageError):
    """No such repository."""


class UploadNotFound(StorageError):
    """No upload in progress under that id."""


class UploadRangeMismatch(StorageError):
    """A chunk did not start where the upload's bytes end."""


class DigestMismatch(StorageError):
    """Content did not hash to the digest it was declared with."""


class SizeMismatch(StorageError):
    """Content was shorter or longer than declared."""


class EntryInTheWay(StorageError):
    """A write found something it cannot replace in the place of its file.

    The registry writes files only; a folder standing where one of them goes
    was put there by someone else, and is left as it is.
    """


class OutsideRoot(StorageError):
    """A path would have resolved outside the storage root."""
