"""Import of ``docker save`` tarballs and OCI image layouts into storage.

What a source is, is told by what it holds:

- ``manifest.json``: a ``docker save`` tarball (or its unpacked folder). Layers
  are plain tars, at ``<id>/layer.tar`` or, from Docker 25, ``blobs/sha256/<hex>``;
  each is stored gzip-compressed (deterministically, so a second import gives the
  same digests) under a Docker v2 schema 2 manifest. The config is kept byte for
  byte, so the image id does not change.
- ``oci-layout``: an OCI image layout, as a folder or a tar (``oci:`` and
  ``oci-archive:`` in skopeo). Blobs and manifests are stored as they are; an
  index comes with every child manifest it lists.

An import reads and checks everything the archive declares before it writes,
verifies each blob against its digest while it streams into storage, and then
makes the result visible: blob links, manifests (children before parents), tags
last. An archive that fails a check leaves no tag, manifest or link behind; blobs
that passed before it stay in the store, unreferenced.

The parts: ``sources`` opens a folder or a tar and reads its documents and
digests; ``docker_archive`` and ``oci_layout`` read and store the two kinds of
archive; ``references`` parses the names of images and picks the ones to import;
``publishing`` makes stored images visible; ``progress`` shows how far it got;
``errors`` holds ImageImportError.
"""

import tarfile
import zlib

from app.events import record_event
from app.images.docker_archive import DOCKER_ARCHIVE_MANIFEST, import_docker_archive
from app.images.errors import ImageImportError
from app.images.oci_layout import OCI_LAYOUT_FILE, import_oci_layout
from app.images.publishing import ImportedImage
from app.images.references import parse_reference
from app.images.sources import open_source

__all__ = ["ImageImportError", "ImportedImage", "import_image"]


# Errors of a tar or gzip stream that ends early or holds garbage.
DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error)


def import_image(storage, source, target=None, progress=False):
    """Import the images of a docker-save tarball or OCI layout; return them."""
    wanted = None if target is None else parse_reference(target, "target")
    try:
        with open_source(source) as archive:
            importer = _find_importer(archive, source)
            imported = importer(storage, archive, wanted, progress)
    except DAMAGED_ARCHIVE_ERRORS as error:
        reason = " ".join(str(error).split())
        message = f"{source} is truncated or damaged ({reason})"
        raise ImageImportError(message) from None
    except OSError as error:
        raise ImageImportError(f"cannot import {source}: {error}") from None
    for image in imported:
        record_event(
            "tag moved",
            repository=image.name,
            reference=image.tag,
            digest=image.digest,
        )
    return imported


def _find_importer(archive, source):
    """Return the function that imports what ``archive`` holds."""
    if archive.exists(DOCKER_ARCHIVE_MANIFEST):
        return import_docker_archive
    if archive.exists(OCI_LAYOUT_FILE):
        return import_oci_layout
    raise ImageImportError(
        f"{source} holds neither manifest.json (docker save) nor oci-layout"
        " (OCI layout); is it complete?"
    )
