"""Publishing: what makes stored blobs visible, in an order that is safe.

A reader stores an archive's blobs first and checks its manifests as a push
would; ``publish`` then links the blobs into each repository, puts the
manifests (children before parents) and sets the tags last, so that an import
that fails before it leaves nothing visible.
"""

from dataclasses import dataclass

from app.errors import RegistryError
from app.images.errors import ImageImportError
from app.reference import Digest
from app.v2.manifests import parse_manifest, store_manifest


@dataclass(frozen=True)
class ImportedImage:
    """An image the import made visible under ``name:tag``."""

    name: str
    tag: str
    digest: Digest
    media_type: str


@dataclass(frozen=True)
class StoredImage:
    """An image whose blobs are stored, not yet visible in any repository."""

    blobs: tuple
    manifests: tuple  # (body, ManifestContent, Digest); children before parents
    references: tuple


def publish(storage, images):
    """Link blobs, then put manifests, then set tags; return what was imported."""
    for image in images:
        for name in _names(image):
            for digest in image.blobs:
                storage.link_blob(name, digest)
    for image in images:
        for name in _names(image):
            for body, content, digest in image.manifests:
                store_manifest(storage, name, body, content, digest)
    return [_tag(storage, image, ref) for image in images for ref in image.references]


def _names(image):
    """Return the distinct repository names an image goes to."""
    return dict.fromkeys(ref.name for ref in image.references)


def _tag(storage, image, reference):
    """Point ``reference`` at the image's top manifest; return the ImportedImage."""
    _body, content, digest = image.manifests[-1]
    storage.tag_manifest(reference.name, reference.tag, digest)
    return ImportedImage(reference.name, reference.tag, digest, content.media_type)


def parse_archive_manifest(body, media_type, digest):
    """Return what a manifest declares, as a push would check it."""
    try:
        return parse_manifest(body, media_type)
    except RegistryError as error:
        message = f"manifest {digest} is not valid: {error.message}"
        raise ImageImportError(message) from None
