"""Writes and deletes act on an entry's own place, and only on what reads as one.

A push or a delete of a tag, a manifest record or a blob link writes or
removes the file in its own place: a link standing there is replaced or
removed itself, never followed. A delete finds missing what a pull finds
missing, and leaves it. A folder where a file goes is refused with a 409 that
changes nothing, and no refused request leaves a file in ``tmp/``.
"""

import os

import pytest

from app.reference import compute_digest
from tests.conftest import DOCKER_MANIFEST, bearer, seed_image
from tests.test_safety import GARBAGE, blob_file, replace_with, stored_state

# What stands in a tag's or a record's place that a pull finds missing.
MISSING_KINDS = [
    "fifo",
    "folder",
    "nested folder",
    "loop",
    "dangling link",
    "link out of the root",
    "garbage",
    "empty",
]
# What a write cannot replace by renaming a file into its place.
FOLDER_KINDS = ["folder", "nested folder"]
# What a write replaces, as it replaces a file the registry wrote.
REPLACED_KINDS = [kind for kind in MISSING_KINDS if kind not in FOLDER_KINDS] + [
    "link to another repository"
]
# A blob link is an empty file: any file in its place reads as one.
LINK_MISSING_KINDS = [
    kind for kind in MISSING_KINDS if kind not in ("garbage", "empty")
]
NEW_LAYER = b"a layer pushed now"


pytestmark = pytest.mark.usefixtures("link_check")


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside"
    path.write_bytes(b"outside the storage root")
    return path


@pytest.fixture
def images(storage):
    """Images a:latest and b:latest, the second with a layer of its own."""
    return seed_image(storage, "a", "latest"), seed_image(
        storage, "b", "latest", layers=(b"a layer of b",)
    )


def repository_file(storage, name, *parts):
    return os.path.join(storage.root, "repos", name, *parts)


def put_in_place(path, kind, outside, counterpart=None):
    """Put ``kind`` in the place of ``path`` (see ``replace_with``)."""
    if kind == "nested folder":
        replace_with(path, "folder", outside)
        os.mkdir(os.path.join(path, "inner"))
    elif kind == "empty":
        replace_with(path, "garbage", outside)
        open(path, "wb").close()
    elif kind == "link to another repository":
        replace_with(path, "link to another blob", outside, counterpart)
    else:
        replace_with(path, kind, outside)


def temporary_files(storage):
    return os.listdir(os.path.join(storage.root, "tmp"))


def error_codes(response):
    assert response.is_json
    return [error["code"] for error in response.json["errors"]]


def push_tag(client, tag, body, name="a"):
    return client.put(
        f"/v2/{name}/manifests/{tag}",
        data=body,
        content_type=DOCKER_MANIFEST,
        headers=bearer(client, name, "push"),
    )


def delete(client, path, name="a"):
    return client.delete(f"/v2/{name}/{path}", headers=bearer(client, name, "delete"))


# Tags.


@pytest.mark.parametrize(
    "alias, target",
    [("alias", "latest"), ("crossrepo", "../../b/_tags/latest")],
)
def test_a_tag_delete_removes_a_link_in_its_place_not_what_it_names(
    client, storage, images, alias, target
):
    os.symlink(target, repository_file(storage, "a", "_tags", alias))
    response = delete(client, f"manifests/{alias}")
    assert response.status_code == 202
    assert not os.path.lexists(repository_file(storage, "a", "_tags", alias))
    assert storage.resolve_tag("a", "latest") == images[0]["digest"]
    assert storage.resolve_tag("b", "latest") == images[1]["digest"]


@pytest.mark.parametrize(
    "alias, target",
    [("alias", "latest"), ("crossrepo", "../../b/_tags/latest")],
)
def test_a_tag_push_replaces_a_link_in_its_place_not_what_it_names(
    client, storage, images, alias, target
):
    path = repository_file(storage, "a", "_tags", alias)
    os.symlink(target, path)
    body = images[0]["manifest"] + b"\n"
    response = push_tag(client, alias, body)
    assert response.status_code == 201
    assert not os.path.islink(path)
    assert storage.resolve_tag("a", alias) == compute_digest(body)
    assert storage.resolve_tag("a", "latest") == images[0]["digest"]
    assert storage.resolve_tag("b", "latest") == images[1]["digest"]


@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_deleting_a_tag_that_reads_as_missing_is_manifest_unknown(
    client, storage, images, outside, kind
):
    put_in_place(repository_file(storage, "a", "_tags", "odd"), kind, outside)
    before = stored_state(storage)
    for method in ("GET", "DELETE"):
        response = client.open(
            "/v2/a/manifests/odd",
            method=method,
            headers=bearer(client, "a", "pull,delete"),
        )
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]
    assert stored_state(storage) == before
    assert outside.read_bytes() == b"outside the storage root"


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_pushing_a_tag_over_a_folder_is_a_conflict_that_changes_nothing(
    client, storage, images, outside, kind
):
    put_in_place(repository_file(storage, "a", "_tags", "odd"), kind, outside)
    before = stored_state(storage)
    response = push_tag(client, "odd", images[0]["manifest"] + b"\n")
    assert response.status_code == 409
    assert error_codes(response) == ["UNSUPPORTED"]
    assert stored_state(storage) == before
    assert temporary_files(storage) == []


@pytest.mark.parametrize("kind", ["garbage", "fifo", "loop"])
@pytest.mark.parametrize("push", ["tag", "blob"])
def test_a_push_into_a_folder_that_is_no_folder_changes_nothing(
    client, storage, images, outside, push, kind
):
    if push == "tag":
        folder = repository_file(storage, "a", "_tags")
    else:
        folder = repository_file(storage, "a", "_blobs", "sha256")
    put_in_place(folder, kind, outside)
    before = stored_state(storage)
    if push == "tag":
        response = push_tag(client, "odd", images[0]["manifest"] + b"\n")
    else:
        response = monolithic_push(client, NEW_LAYER)
    assert response.status_code == 409
    assert error_codes(response) == ["UNSUPPORTED"]
    assert stored_state(storage) == before
    assert temporary_files(storage) == []


@pytest.mark.parametrize("kind", REPLACED_KINDS)
def test_pushing_a_tag_replaces_what_else_stands_in_its_place(
    client, storage, images, outside, kind
):
    path = repository_file(storage, "a", "_tags", "odd")
    other_tag = repository_file(storage, "b", "_tags", "latest")
    put_in_place(path, kind, outside, other_tag)
    body = images[0]["manifest"] + b"\n"
    response = push_tag(client, "odd", body)
    assert response.status_code == 201
    assert not os.path.islink(path)
    assert storage.resolve_tag("a", "odd") == compute_digest(body)
    assert storage.resolve_tag("b", "latest") == images[1]["digest"]
    assert outside.read_bytes() == b"outside the storage root"
    assert temporary_files(storage) == []


def test_removing_a_repository_leaves_tags_that_read_as_missing(
    storage, images, outside
):
    from app.inventory import remove_repository

    path = repository_file(storage, "a", "_tags", "odd")
    put_in_place(path, "garbage", outside)
    assert remove_repository(storage, "a") == (1, 2)
    with open(path, "rb") as tag:
        assert tag.read() == GARBAGE


# Manifest records.


def test_a_manifest_push_and_delete_act_on_a_record_link_itself(
    client, storage, images
):
    """A's record of b's manifest, a link to b's record, is replaced by a push
    and removed by a delete; b's record stays as it was."""
    digest = images[1]["digest"]
    own = repository_file(storage, "a", "_manifests", "sha256", digest.hex)
    other = repository_file(storage, "b", "_manifests", "sha256", digest.hex)
    os.symlink(os.path.relpath(other, os.path.dirname(own)), own)
    storage.link_blob("a", compute_digest(b"a layer of b"))
    response = push_tag(client, digest, images[1]["manifest"])
    assert response.status_code == 201
    assert not os.path.islink(own)
    os.unlink(own)
    os.symlink(os.path.relpath(other, os.path.dirname(own)), own)
    response = delete(client, f"manifests/{digest}")
    assert response.status_code == 202
    assert not os.path.lexists(own)
    assert storage.has_manifest("b", digest)


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_pushing_a_manifest_over_a_folder_record_changes_nothing(
    client, storage, images, outside, kind
):
    body = images[0]["manifest"] + b"\n"
    digest = compute_digest(body)
    record = repository_file(storage, "a", "_manifests", "sha256", digest.hex)
    put_in_place(record, kind, outside)
    before = stored_state(storage)
    response = push_tag(client, digest, body)
    assert response.status_code == 409
    assert error_codes(response) == ["UNSUPPORTED"]
    assert stored_state(storage) == before
    assert temporary_files(storage) == []


# Blobs and blob links.


def layer_link(storage, digest, name="a"):
    return repository_file(storage, name, "_blobs", "sha256", digest.hex)


@pytest.mark.parametrize("kind", LINK_MISSING_KINDS)
def test_deleting_a_blob_link_that_reads_as_missing_is_blob_unknown(
    client, storage, images, outside, kind
):
    digest = compute_digest(images[0]["layers"][0])
    put_in_place(layer_link(storage, digest), kind, outside)
    before = stored_state(storage)
    response = delete(client, f"blobs/{digest}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]
    assert stored_state(storage) == before


def test_deleting_a_blob_link_removes_a_link_in_its_place_not_what_it_names(
    client, storage, images
):
    digest = compute_digest(images[0]["layers"][0])
    storage.link_blob("b", digest)
    own = layer_link(storage, digest)
    os.unlink(own)
    os.symlink(
        os.path.relpath(layer_link(storage, digest, "b"), os.path.dirname(own)), own
    )
    response = delete(client, f"blobs/{digest}")
    assert response.status_code == 202
    assert not os.path.lexists(own)
    assert storage.repository_has_blob("b", digest)


def monolithic_push(client, data, name="a", opened=lambda: None):
    """Push ``data`` with one POST; ``opened()`` is called before it."""
    opened()
    return client.post(
        f"/v2/{name}/blobs/uploads/?digest={compute_digest(data)}",
        data=data,
        content_type="application/octet-stream",
        headers=bearer(client, name, "push"),
    )


def chunked_push(client, data, name="a", opened=lambda: None):
    """Open an upload, call ``opened()``, then close it with ``data``."""
    headers = bearer(client, name, "push")
    started = client.post(f"/v2/{name}/blobs/uploads/", headers=headers)
    assert started.status_code == 202
    opened()
    return client.put(
        f"{started.headers['Location']}?digest={compute_digest(data)}",
        data=data,
        content_type="application/octet-stream",
        headers=headers,
    )


@pytest.mark.parametrize("push", [monolithic_push, chunked_push])
@pytest.mark.parametrize("where", ["blob", "link"])
@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_a_blob_push_over_a_folder_is_a_conflict_that_changes_nothing(
    client, storage, images, outside, kind, where, push
):
    digest = compute_digest(NEW_LAYER)
    path = (
        blob_file(storage, digest) if where == "blob" else layer_link(storage, digest)
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    put_in_place(path, kind, outside)
    before = {}
    response = push(
        client, NEW_LAYER, opened=lambda: before.update(stored_state(storage))
    )
    assert response.status_code == 409
    assert error_codes(response) == ["UNSUPPORTED"]
    assert stored_state(storage) == before
    assert temporary_files(storage) == []
    head = client.head(f"/v2/a/blobs/{digest}", headers=bearer(client, "a"))
    assert head.status_code == 404


@pytest.mark.parametrize("kind", REPLACED_KINDS)
def test_a_blob_push_replaces_what_else_stands_in_its_links_place(
    client, storage, images, outside, kind
):
    digest = compute_digest(NEW_LAYER)
    storage.write_blob([NEW_LAYER])
    storage.link_blob("b", digest)
    path = layer_link(storage, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    put_in_place(path, kind, outside, layer_link(storage, digest, "b"))
    response = monolithic_push(client, NEW_LAYER)
    assert response.status_code == 201
    assert not os.path.islink(path) and os.path.isfile(path)
    assert storage.repository_has_blob("b", digest)
    assert outside.read_bytes() == b"outside the storage root"
    head = client.head(f"/v2/a/blobs/{digest}", headers=bearer(client, "a"))
    assert head.status_code == 200


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_deleting_a_blob_whose_file_is_a_folder_is_blob_unknown(storage, outside, kind):
    from app.storage.errors import BlobNotFound

    digest = compute_digest(NEW_LAYER)
    path = blob_file(storage, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    put_in_place(path, kind, outside)
    before = stored_state(storage)
    with pytest.raises(BlobNotFound):
        storage.delete_blob(digest)
    assert stored_state(storage) == before


# Temporary files.


def test_a_refused_upload_start_leaves_no_temporary_file(storage):
    uploads = os.path.join(storage.root, "uploads")
    os.rmdir(uploads)
    open(uploads, "wb").close()
    with pytest.raises(OSError):
        storage.create_upload("a")
    assert temporary_files(storage) == []


def test_a_blob_refused_for_its_digest_leaves_no_temporary_file(storage):
    from app.storage.errors import DigestMismatch

    with pytest.raises(DigestMismatch):
        storage.write_blob([b"these bytes"], compute_digest(b"other bytes"))
    assert temporary_files(storage) == []
