"""The storage contract: what views and the import code may rely on.

A driver stores content-addressed blobs once, and per repository the links
that say which blobs and manifests the repository holds and which tags point
where. Every write is atomic: a reader sees the old state or the new one,
never a half-written file, whatever process writes and however it dies.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Manifest:
    """A manifest as stored: its exact bytes, media type and digest."""

    body: bytes
    media_type: str
    digest: object


@dataclass(frozen=True)
class StoredItem:
    """What a listing for garbage collection reports of one stored thing.

    ``key`` is a Digest (blobs, links, manifests) or an upload id; ``modified``
    is when it was last written or touched, in seconds since the epoch.
    ``odd`` names what stands in the item's place when it is nothing the
    registry writes there (``"folder"``, ``"fifo"``...): such an item is
    never removed, only reported.
    """

    key: object
    size: int
    modified: float
    odd: str | None = None


class Storage:
    """The operations every storage driver provides."""

    # Blobs: content addressed by digest, shared by all repositories.

    def has_blob(self, digest):
        """Tell whether the store holds content with this digest."""
        raise NotImplementedError

    def blob_size(self, digest):
        """Return the size in bytes of a stored blob; BlobNotFound if absent."""
        raise NotImplementedError

    def open_blob(self, digest):
        """Return a binary file object positioned at the blob's first byte."""
        raise NotImplementedError

    def read_blob(self, digest):
        """Return a (small) blob's content as bytes."""
        raise NotImplementedError

    def write_blob(self, stream, digest=None, size=None, progress=None):
        """Store what ``stream`` yields and return its Digest.

        The content is hashed as it is written and enters the store only if it
        matches ``digest`` (DigestMismatch) and ``size`` (SizeMismatch) when
        given. ``progress`` is called with the count of each block written.
        """
        raise NotImplementedError

    def delete_blob(self, digest):
        """Remove a blob from the store; links to it are left to the caller."""
        raise NotImplementedError

    def list_blobs(self):
        """Return the Digests of every blob in the store (manifests too)."""
        raise NotImplementedError

    def check_access(self):
        """Raise OSError unless the store can be read and written right now."""
        raise NotImplementedError

    def scan_blobs(self):
        """Yield a StoredItem for every blob in the store, in no set order."""
        raise NotImplementedError

    def sweep_blob(self, digest, cutoff):
        """Remove a blob unless it was modified after ``cutoff``; tell if removed.

        A blob touched, linked or written again while this runs is kept.
        """
        raise NotImplementedError

    # Repositories and the blobs they hold.

    def repository_exists(self, name):
        """Tell whether any manifest was ever stored under this name."""
        raise NotImplementedError

    def list_repositories(self):
        """Return, in lexical order, the names of repositories holding a manifest.

        A repository whose every manifest and tag was deleted is left out.
        """
        raise NotImplementedError

    def list_stored_repositories(self):
        """Return, sorted, the names of repositories holding manifests or blob links.

        Unlike ``list_repositories`` this includes repositories whose blobs were
        pushed but no manifest yet.
        """
        raise NotImplementedError

    def link_blob(self, name, digest):
        """Let repository ``name`` serve a stored blob; BlobNotFound if absent.

        Linking again refreshes the modification time of the link and the blob,
        so that a running garbage collection keeps both.
        """
        raise NotImplementedError

    def check_blob_writable(self, name, digest):
        """Raise EntryInTheWay if the blob or its link in repository ``name``
        could not be written, so that a request is refused before it changes
        anything. A driver with nothing that could stand in the way has
        nothing to check."""

    def touch_blob(self, name, digest):
        """Refresh a linked blob as ``link_blob`` does; tell whether it is served.

        Unlike ``link_blob`` this never creates a link.
        """
        raise NotImplementedError

    def list_blob_links(self, name):
        """Return the Digests of the blobs repository ``name`` may serve."""
        raise NotImplementedError

    def scan_blob_links(self, name):
        """Yield a StoredItem for every blob link of repository ``name``."""
        raise NotImplementedError

    def sweep_blob_link(self, name, digest, cutoff):
        """Remove a blob link unless modified after ``cutoff``; tell if removed."""
        raise NotImplementedError

    def repository_has_blob(self, name, digest):
        """Tell whether repository ``name`` may serve the blob."""
        raise NotImplementedError

    def unlink_blob(self, name, digest):
        """Stop repository ``name`` serving a blob; BlobNotFound if it did not."""
        raise NotImplementedError

    # Manifests and tags.

    def put_manifest(self, name, body, media_type, digest=None):
        """Store a manifest's bytes in repository ``name``; return its Digest.

        With ``digest``, the bytes are stored under its algorithm and must match
        it (DigestMismatch); without, they are hashed with sha256.
        """
        raise NotImplementedError

    def has_manifest(self, name, digest):
        """Tell whether repository ``name`` holds the manifest with this digest."""
        raise NotImplementedError

    def touch_manifest(self, name, digest):
        """Refresh a held manifest's modification time; tell whether it is held."""
        raise NotImplementedError

    def scan_manifests(self, name):
        """Yield a StoredItem for every manifest repository ``name`` holds."""
        raise NotImplementedError

    def sweep_manifest(self, name, digest, cutoff):
        """Remove a manifest unless modified after ``cutoff``; tell if removed.

        Only the repository's record goes: tags, referrer records and the bytes
        are left to the caller, as with ``delete_manifest``.
        """
        raise NotImplementedError

    def delete_manifest(self, name, digest):
        """Remove a manifest from the repository; ManifestNotFound if absent.

        Tags and referrer records are left to the caller; the bytes stay in the
        store for garbage collection.
        """
        raise NotImplementedError

    def get_manifest(self, name, digest):
        """Return the Manifest with this digest; ManifestNotFound if absent."""
        raise NotImplementedError

    def list_manifests(self, name):
        """Return the Digests of the manifests the repository holds, tagged or not."""
        raise NotImplementedError

    def tag_manifest(self, name, tag, digest):
        """Point ``tag`` at a manifest the repository holds."""
        raise NotImplementedError

    def check_manifest_writable(self, name, digest, tag=None):
        """Raise EntryInTheWay if the manifest, its record in repository
        ``name`` or ``tag`` could not be written (see ``check_blob_writable``)."""

    def resolve_tag(self, name, tag):
        """Return the Digest that ``tag`` points to; ManifestNotFound if none."""
        raise NotImplementedError

    def list_tags(self, name):
        """Return the repository's tags in lexical order; RepositoryNotFound."""
        raise NotImplementedError

    def tag_pushed_at(self, name, tag):
        """Return when ``tag`` was last pointed somewhere, as a POSIX timestamp."""
        raise NotImplementedError

    def find_tags(self, name, digest):
        """Return the tags that point to ``digest``, in lexical order."""
        raise NotImplementedError

    def delete_tag(self, name, tag):
        """Remove a tag, leaving its manifest; ManifestNotFound if no such tag."""
        raise NotImplementedError

    def untag_manifest(self, name, digest):
        """Remove every tag that points to ``digest``; return the removed tags."""
        raise NotImplementedError

    # Referrers: manifests that name another manifest as their ``subject``.

    def add_referrer(self, name, subject, descriptor):
        """Record ``descriptor`` (a dict with ``digest``) as a referrer of ``subject``.

        Recording the same referrer again replaces the earlier record.
        """
        raise NotImplementedError

    def list_referrers(self, name, subject):
        """Return the descriptors recorded for ``subject``, ordered by digest."""
        raise NotImplementedError

    def remove_referrer(self, name, subject, digest):
        """Forget that manifest ``digest`` refers to ``subject``; tell if it did."""
        raise NotImplementedError

    def sweep_empty_folders(self, cutoff):
        """Remove repository folders empty and unchanged since ``cutoff``; count them.

        A driver without folders has nothing to do. A write into a folder being
        removed must still succeed.
        """
        return 0

    # Uploads: bytes received across requests, on any worker, then committed.

    def create_upload(self, name):
        """Start an upload for repository ``name``; return its id."""
        raise NotImplementedError

    def upload_size(self, name, upload_id):
        """Return how many bytes the upload holds; UploadNotFound if none."""
        raise NotImplementedError

    def append_upload(self, name, upload_id, stream, start=None):
        """Append what ``stream`` yields; return the new size.

        ``start``, when given, must equal the current size (UploadRangeMismatch).
        A failure while reading leaves the upload as it was before the call.
        """
        raise NotImplementedError

    def commit_upload(self, name, upload_id, digest):
        """Move the upload's bytes into the store if they match ``digest``."""
        raise NotImplementedError

    def cancel_upload(self, name, upload_id):
        """Forget an upload and its bytes."""
        raise NotImplementedError

    def expire_uploads(self, max_age):
        """Remove uploads idle for ``max_age`` seconds; return their ids."""
        raise NotImplementedError

    def scan_uploads(self):
        """Yield a StoredItem (upload id, bytes held, last activity) per upload."""
        raise NotImplementedError
