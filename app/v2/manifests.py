"""``/v2/<name>/manifests/<reference>``: pull, push and delete manifests.

A pushed manifest is stored byte for byte once the repository holds every blob
and child manifest it references. A manifest with a ``subject`` is recorded as
a referrer of that digest, which need not exist yet.
"""

from dataclasses import dataclass

from flask import Blueprint, Response, current_app, request

from app.auth import require_access
from app.context import get_storage, require_deletes_enabled
from app.documents import DocumentError, parse_document
from app.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
    TagInvalid,
)
from app.events import record_event
from app.reference import (
    Digest,
    compute_digest,
    parse_digest,
    parse_reference,
    validate_name,
)
from app.storage.errors import BlobNotFound, ManifestNotFound
from app.v2.bodies import request_body
from app.v2.descriptors import (
    check_annotations,
    check_media_type,
    parse_descriptor,
    parse_descriptor_list,
    parse_index_entry,
)

blueprint = Blueprint("manifests", __name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

# Manifests that name a config and layers, and indexes that name child manifests.
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class ManifestContent:
    """What a pushed manifest declares: its type, what it references, its subject."""

    media_type: str
    blobs: tuple
    manifests: tuple
    subject: Digest | None
    artifact_type: str | None
    annotations: dict | None
    descriptors: tuple = ()


@blueprint.get("/<path:name>/manifests/<reference>")
def get_manifest(name, reference):
    """Serve a manifest's stored bytes with its stored media type.

    The Accept header never hides a manifest: what is stored is what a client
    gets, with its true Content-Type, and the client decides what to do with it.
    """
    name = validate_name(name)
    reference = lookup_reference(reference)
    require_access("repository", name, "pull")

    manifest = find_manifest(get_storage(), name, reference)

    return Response(manifest.body, headers=manifest_headers(manifest))


def find_manifest(storage, name, reference):
    """Return the stored Manifest a tag or Digest names in repository ``name``."""
    try:
        if isinstance(reference, Digest):
            digest = reference
        else:
            digest = storage.resolve_tag(name, reference)
        return storage.get_manifest(name, digest)
    except ManifestNotFound:
        if not storage.repository_exists(name):
            raise NameUnknown(detail={"name": name}) from None
        raise


def manifest_headers(manifest):
    """The headers of a manifest's answer, besides its length."""
    digest = str(manifest.digest)
    return {
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
    }


@blueprint.put("/<path:name>/manifests/<reference>")
def put_manifest(name, reference):
    """Store a manifest under its digest, and point the tag at it if one is named."""
    name = validate_name(name)
    reference = parse_reference(reference)
    require_access("repository", name, "push")

    body = read_manifest_body()
    digest = manifest_digest(body, reference)
    content = parse_manifest(body, request.mimetype)
    storage = get_storage()
    tag = None if isinstance(reference, Digest) else reference
    storage.check_manifest_writable(name, digest, tag)  # before anything changes
    check_references(storage, name, content)

    store_manifest(storage, name, body, content, digest)
    if not isinstance(reference, Digest):
        storage.tag_manifest(name, reference, digest)
        record_event("tag moved", repository=name, reference=reference, digest=digest)

    return manifest_created(name, digest, content.subject)


@blueprint.delete("/<path:name>/manifests/<reference>")
def delete_manifest(name, reference):
    """Delete a manifest by digest, with its tags and referrer record, or one tag."""
    name = validate_name(name)
    reference = parse_reference(reference)
    require_access("repository", name, "delete")
    require_deletes_enabled()

    storage = get_storage()
    if not storage.repository_exists(name):
        raise NameUnknown(detail={"name": name})
    if isinstance(reference, Digest):
        remove_manifest(storage, name, reference)
    else:
        storage.delete_tag(name, reference)
        record_event("tag deleted", repository=name, reference=reference)

    response = Response(status=202)
    response.content_length = 0
    return response


def lookup_reference(reference):
    """Return the Digest or tag to look up; a tag no push could create is unknown."""
    try:
        return parse_reference(reference)
    except TagInvalid:
        raise ManifestUnknown(detail={"tag": reference}) from None


# Reading and checking a pushed manifest.


def read_manifest_body():
    """Return the request body, refusing one past the configured size limit."""
    limit = current_app.config["REGISTRY_MANIFEST_MAX_SIZE"]
    length = request.content_length
    if length is not None and length > limit:
        raise ManifestTooLarge(detail={"limit": limit, "size": length})
    body = read_at_most(request_body(), limit + 1)
    if len(body) > limit:
        raise ManifestTooLarge(detail={"limit": limit})
    return body


def read_at_most(stream, count):
    """Return what ``stream`` yields, stopping after ``count`` bytes."""
    blocks = []
    while count > 0 and (block := stream.read(count)):
        blocks.append(block)
        count -= len(block)
    return b"".join(blocks)


def manifest_digest(body, reference):
    """Return the body's digest, in the algorithm of a digest reference."""
    if not isinstance(reference, Digest):
        return compute_digest(body)
    digest = compute_digest(body, reference.algorithm)
    if digest != reference:
        raise DigestInvalid(
            "manifest does not match the digest it was pushed to",
            {"expected": str(reference), "actual": str(digest)},
        )
    return digest


def parse_manifest(body, content_type):
    """Return what a pushed manifest declares, or raise ManifestInvalid."""
    document = load_document(body)
    media_type = manifest_media_type(document, content_type)
    if document.get("schemaVersion") != SCHEMA_VERSION:
        raise ManifestInvalid(
            "schemaVersion must be 2", {"schemaVersion": document.get("schemaVersion")}
        )
    if media_type in INDEX_TYPES:
        descriptors = parse_descriptor_list(document, "manifests", parse_index_entry)
        blobs, manifests = (), digests_of(descriptors)
    else:
        descriptors = (parse_descriptor(document.get("config"), "config"),)
        descriptors += parse_descriptor_list(document, "layers")
        blobs, manifests = digests_of(descriptors), ()
    return ManifestContent(
        media_type,
        blobs,
        manifests,
        subject_digest(document),
        referrer_artifact_type(document, media_type, descriptors),
        check_annotations(document.get("annotations"), "annotations"),
        descriptors,
    )


def load_document(body):
    """Return the manifest's JSON object, or raise ManifestInvalid."""
    try:
        document = parse_document(body, unique_keys=True)
    except DocumentError as error:
        raise ManifestInvalid("manifest is not JSON", {"reason": str(error)}) from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    return document


def manifest_media_type(document, content_type):
    """Return the media type that the body and the Content-Type agree on."""
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string", {"field": "mediaType"})
    if declared and content_type and declared != content_type:
        raise ManifestInvalid(
            "Content-Type does not match the manifest's mediaType",
            {"mediaType": declared, "contentType": content_type},
        )
    media_type = declared or content_type
    if media_type not in IMAGE_MANIFEST_TYPES | INDEX_TYPES:
        raise ManifestInvalid(
            "unsupported manifest media type", {"mediaType": media_type}
        )
    return media_type


def digests_of(descriptors):
    """Return the Digests that descriptors name, in order."""
    return tuple(descriptor.digest for descriptor in descriptors)


def subject_digest(document):
    """Return the Digest of the manifest's subject, checked, or None without one."""
    if document.get("subject") is None:
        return None
    return parse_descriptor(document["subject"], "subject").digest


def stored_subject_digest(document):
    """Return the subject Digest a stored manifest names, or None."""
    subject = document.get("subject")
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return None
    try:
        return parse_digest(subject["digest"])
    except DigestInvalid:
        return None


def referrer_artifact_type(document, media_type, descriptors):
    """Return the type a referrer is listed with: artifactType, else config's type."""
    artifact_type = document.get("artifactType")
    if artifact_type is not None:
        return check_media_type(artifact_type, "artifactType")
    if media_type in INDEX_TYPES:
        return None
    return descriptors[0].media_type


def check_references(storage, name, content):
    """Raise unless the repository holds all it references, at the sizes declared.

    Touching what is referenced, rather than only looking, keeps it from a
    garbage collection that runs while the manifest is stored.
    """
    is_index = content.media_type in INDEX_TYPES
    held_size = held_manifest_size if is_index else held_blob_size
    for descriptor in content.descriptors:
        size = held_size(storage, name, descriptor.digest)
        if size is None:
            raise ManifestBlobUnknown(detail={"digest": str(descriptor.digest)})
        if size != descriptor.size:
            field = f"{descriptor.field}.size"
            raise ManifestInvalid(
                f"{field} is {descriptor.size}; what it names is {size} bytes",
                {"field": field, "size": descriptor.size, "stored": size},
            )


def held_blob_size(storage, name, digest):
    """Return the size of a blob the repository holds, touching it; None if not."""
    if not storage.touch_blob(name, digest):
        return None
    try:
        return storage.blob_size(digest)
    except BlobNotFound:
        return None


def held_manifest_size(storage, name, digest):
    """Return the size of a manifest the repository holds, touching it; None if not."""
    if not storage.touch_manifest(name, digest):
        return None
    try:
        return len(storage.get_manifest(name, digest).body)
    except ManifestNotFound:
        return None


# Storing and removing.


def store_manifest(storage, name, body, content, digest):
    """Store the manifest's bytes, then record it as a referrer of its subject."""
    storage.put_manifest(name, body, content.media_type, digest)
    record_event("manifest pushed", repository=name, digest=digest, size=len(body))
    if content.subject is not None:
        descriptor = referrer_descriptor(content, digest, len(body))
        storage.add_referrer(name, content.subject, descriptor)
        record_event(
            "referrer added", repository=name, digest=digest, subject=content.subject
        )


def referrer_descriptor(content, digest, size):
    """Return the descriptor the referrers list shows for a manifest."""
    descriptor = {"mediaType": content.media_type, "digest": str(digest), "size": size}
    if content.artifact_type:
        descriptor["artifactType"] = content.artifact_type
    if content.annotations:
        descriptor["annotations"] = content.annotations
    return descriptor


def remove_manifest(storage, name, digest):
    """Remove a manifest, every tag pointing at it, and its referrer record."""
    manifest = storage.get_manifest(name, digest)
    subject = stored_subject(manifest.body)

    for tag in storage.untag_manifest(name, digest):
        record_event("tag deleted", repository=name, reference=tag, digest=digest)
    if subject is not None and storage.remove_referrer(name, subject, digest):
        record_event(
            "referrer removed", repository=name, digest=digest, subject=subject
        )
    storage.delete_manifest(name, digest)
    record_event(
        "manifest deleted", repository=name, digest=digest, size=len(manifest.body)
    )


def stored_subject(body):
    """Return the subject Digest of stored manifest bytes, None if they name none."""
    try:
        return stored_subject_digest(load_document(body))
    except ManifestInvalid:
        return None


def manifest_created(name, digest, subject):
    """Answer 201 with where the manifest lives and, if it has one, its subject."""
    response = Response(status=201)
    response.headers["Location"] = f"/v2/{name}/manifests/{digest}"
    response.headers["Docker-Content-Digest"] = str(digest)
    if subject is not None:
        response.headers["OCI-Subject"] = str(subject)
    response.content_length = 0
    return response
