"""However a request is built, it reads nothing outside the storage root."""

import os
import time

import pytest

from app.reference import compute_digest
from tests.conftest import bearer, get_token, seed_image

SECRET = b"outside the storage root"


@pytest.fixture(autouse=True, params=["openat2", "walk"])
def link_check(request, storage):
    """Run each test with the kernel refusing links out of the root (openat2,
    where the kernel has it) and with the registry walking paths for links."""
    if request.param == "walk":
        storage._beneath.descriptor = None
    return request.param


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def headers(client):
    token = get_token(client, "repository:a:pull", "registry:catalog:*")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../secret/manifests/latest",
        "/v2/a/%2e%2e/%2e%2e/manifests/latest",
        "/v2/a%2F..%2F..%2Fsecret/tags/list",
        "/v2//etc/passwd/manifests/latest",
        "/v2/a/manifests/..%2F..%2Fsecret",
        "/v2/a/blobs/sha256:..%2F..%2F..%2Fsecret",
        "/v2/a/manifests/%00",
        "/v2/a%00b/tags/list",
        "/v2/a/tags/list/../../../secret",
        "/v2/" + "a/" * 200 + "tags/list",
    ],
)
def test_crafted_paths_get_an_oci_error(client, storage, headers, path):
    seed_image(storage, "a", "latest")
    response = client.get(path, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.is_json and "errors" in response.json
    assert SECRET not in response.data


def test_symlinked_tag_outside_the_root_is_not_followed(client, storage, secret_file):
    seed_image(storage, "a", "latest")
    os.symlink(secret_file, os.path.join(storage.root, "repos", "a", "_tags", "evil"))
    response = client.get("/v2/a/manifests/evil", headers=bearer(client, "a"))
    assert response.status_code in (400, 404)
    assert SECRET not in response.data


def test_symlinked_repository_outside_the_root_is_not_followed(
    client, storage, tmp_path
):
    outside = tmp_path / "elsewhere"
    seed_image(storage, "a", "latest")
    os.rename(os.path.join(storage.root, "repos", "a"), outside)
    os.symlink(outside, os.path.join(storage.root, "repos", "a"))
    response = client.get("/v2/a/manifests/latest", headers=bearer(client, "a"))
    assert response.status_code in (400, 404)
    assert response.json["errors"]


def test_symlinked_blob_outside_the_root_is_not_served(client, storage, secret_file):
    image = seed_image(storage, "a", "latest")
    blob = compute_digest(image["layers"][0])
    path = os.path.join(storage.root, "blobs", "sha256", blob.hex[:2], blob.hex)
    os.unlink(path)
    os.symlink(secret_file, path)
    response = client.get(f"/v2/a/blobs/{blob}", headers=bearer(client, "a"))
    assert response.status_code in (400, 404)
    assert SECRET not in response.data


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsupported_methods_answer_in_the_oci_format(client, method):
    response = client.open("/v2/a/manifests/latest", method=method)
    assert response.status_code in (401, 405)
    assert response.is_json


def test_unknown_paths_answer_json_not_html(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.is_json


def test_a_link_that_stays_inside_the_root_is_followed(client, storage):
    image = seed_image(storage, "a", "latest")
    tags = os.path.join(storage.root, "repos", "a", "_tags")
    os.symlink("latest", os.path.join(tags, "alias"))
    response = client.get("/v2/a/manifests/alias", headers=bearer(client, "a"))
    assert response.status_code == 200
    assert response.data == image["manifest"]


def test_storages_opened_and_dropped_keep_no_descriptors(tmp_path):
    from app.storage.filesystem import FilesystemStorage

    FilesystemStorage(str(tmp_path / "warm"))
    before = len(os.listdir("/proc/self/fd"))
    for index in range(300):
        FilesystemStorage(str(tmp_path / f"s{index % 3}"))
    assert len(os.listdir("/proc/self/fd")) <= before + 3


def plant(storage, image, kind, where):
    """Put something that is not a stored file where a tag, record or blob goes."""
    manifest, layer = image["digest"], compute_digest(image["layers"][0])
    places = {
        "tag": os.path.join(storage.root, "repos", "a", "_tags", "odd"),
        "record": os.path.join(
            storage.root, "repos", "a", "_manifests", "sha256", manifest.hex
        ),
        "blob": os.path.join(storage.root, "blobs", "sha256", layer.hex[:2], layer.hex),
    }
    path = places[where]
    if os.path.lexists(path):
        os.unlink(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        os.mkdir(path)
    else:
        os.symlink(os.path.basename(path), path)  # a link to itself: a loop
    return {"tag": "/v2/a/manifests/odd", "record": f"/v2/a/manifests/{manifest}",
            "blob": f"/v2/a/blobs/{layer}"}[where]  # fmt: skip


@pytest.mark.parametrize("kind", ["fifo", "folder", "loop"])
@pytest.mark.parametrize("where", ["tag", "record", "blob"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_what_is_not_a_file_in_the_store_is_missing(
    client, storage, kind, where, method
):
    path = plant(storage, seed_image(storage, "a", "latest"), kind, where)
    response = client.open(path, method=method, headers=bearer(client, "a"))
    assert response.status_code == 404
    if method == "GET":
        assert response.json["errors"]


OTHER_LAYER = b"a layer of another image"


def blob_file(storage, digest):
    hex_digits = digest.hex
    return os.path.join(storage.root, "blobs", "sha256", hex_digits[:2], hex_digits)


def link_to_another_blob(storage, digest):
    """Put in the place of blob ``digest`` a link to another blob's file."""
    other = storage.write_blob([OTHER_LAYER])
    path = blob_file(storage, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(os.path.relpath(blob_file(storage, other), os.path.dirname(path)), path)
    return other


def test_a_blob_write_replaces_a_link_in_its_place(storage):
    """A push of a blob whose place holds a link to another blob's file stores
    it there, and leaves the other blob as it was."""
    digest = compute_digest(b"this blob")
    other = link_to_another_blob(storage, digest)
    storage.write_blob([b"this blob"], digest)
    assert not os.path.islink(blob_file(storage, digest))
    assert storage.read_blob(digest) == b"this blob"
    assert storage.read_blob(other) == OTHER_LAYER


def test_a_sweep_removes_a_link_in_a_blobs_place_not_what_it_names(storage):
    digest = compute_digest(b"this blob")
    other = link_to_another_blob(storage, digest)
    assert digest in {item.key for item in storage.scan_blobs()}
    assert storage.sweep_blob(digest, time.time() + 60)
    assert not os.path.lexists(blob_file(storage, digest))
    assert storage.read_blob(other) == OTHER_LAYER
