"""However a request is built, it reads nothing outside the storage root.

And whatever stands in the tree where the registry keeps a file, a request
reads only what the registry wrote there: anything else is as missing as
nothing at all, and looking at it changes nothing.
"""

import os
import shutil
import stat
import time

import pytest

from app.reference import compute_digest
from tests.conftest import bearer, get_token, seed_image

SECRET = b"outside the storage root"


pytestmark = pytest.mark.usefixtures("link_check")


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


@pytest.mark.parametrize(
    "path",
    [
        "/v2/Bad..Name/manifests/latest",
        "/v2/a/-b/tags/list",
        "/v2/a//b/blobs/sha256:" + "0" * 64,
    ],
)
def test_an_invalid_name_in_the_request_is_name_invalid(client, storage, path):
    seed_image(storage, "a", "latest")
    response = client.get(path, headers=bearer(client, "a"))
    assert response.status_code == 400
    assert [error["code"] for error in response.json["errors"]] == ["NAME_INVALID"]


@pytest.mark.parametrize("path", ["/v2/a/manifests/latest", "/v2/a/tags/list"])
def test_symlinked_repository_outside_the_root_is_unknown(
    client, storage, tmp_path, path
):
    outside = tmp_path / "elsewhere"
    seed_image(storage, "a", "latest")
    os.rename(os.path.join(storage.root, "repos", "a"), outside)
    os.symlink(outside, os.path.join(storage.root, "repos", "a"))
    response = client.get(path, headers=bearer(client, "a"))
    assert response.status_code == 404
    assert [error["code"] for error in response.json["errors"]] == ["NAME_UNKNOWN"]


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


# Where the registry keeps a file a pull reads, and what a pull of it answers
# when something else stands there.
PLACES = {
    "tag": "MANIFEST_UNKNOWN",
    "manifest record": "MANIFEST_UNKNOWN",
    "manifest blob": "MANIFEST_UNKNOWN",
    "layer blob": "BLOB_UNKNOWN",
    "layer record": "BLOB_UNKNOWN",
}
# What may stand there instead of a file the registry wrote.
KINDS = ["fifo", "folder", "loop", "dangling link", "link out of the root"]
# The registry never writes a link in a blob's place: one to another blob's
# file would serve that blob's bytes under this digest. A tag or a record
# edited by hand may hold what no tag or record holds.
ODD_ENTRIES = [(where, kind) for where in PLACES for kind in KINDS] + [
    ("manifest blob", "link to another blob"),
    ("layer blob", "link to another blob"),
    ("tag", "garbage"),
    ("manifest record", "garbage"),
]
OTHER_LAYER = b"a layer of another image"
OTHER_LAYER_DIGEST = compute_digest(OTHER_LAYER)
# What a file edited by hand may hold: no digest, no media type, no JSON.
GARBAGE = b"text/plain\r\nSet-Cookie: planted=1"


def blob_file(storage, digest):
    hex_digits = digest.hex
    return os.path.join(storage.root, "blobs", "sha256", hex_digits[:2], hex_digits)


def plant(storage, kind, where, outside):
    """Put ``kind`` where the registry keeps a file of image ``a:latest``.

    Returns the address that reads it. ``outside`` is a file outside the root,
    for links that lead out of it.
    """
    image = seed_image(storage, "a", "latest")
    other = seed_image(storage, "b", "latest", layers=(OTHER_LAYER,))
    manifest, layer = image["digest"], compute_digest(image["layers"][0])
    records = os.path.join(storage.root, "repos", "a")
    places = {
        "tag": (os.path.join(records, "_tags", "odd"), "/v2/a/manifests/odd"),
        "manifest record": (
            os.path.join(records, "_manifests", "sha256", manifest.hex),
            f"/v2/a/manifests/{manifest}",
        ),
        "manifest blob": (blob_file(storage, manifest), "/v2/a/manifests/latest"),
        "layer blob": (blob_file(storage, layer), f"/v2/a/blobs/{layer}"),
        "layer record": (
            os.path.join(records, "_blobs", "sha256", layer.hex),
            f"/v2/a/blobs/{layer}",
        ),
    }
    path, address = places[where]
    named = other["digest"] if where == "manifest blob" else OTHER_LAYER_DIGEST
    replace_with(path, kind, outside, blob_file(storage, named))
    return address


def replace_with(path, kind, outside, counterpart=None):
    """Put ``kind`` in the place of the file or folder ``path``.

    ``outside`` is a file outside the root, for links that lead out of it;
    ``counterpart`` the file of another blob, for a link to it.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        os.mkdir(path)
    elif kind in ("file", "garbage"):
        with open(path, "wb") as file:
            file.write(GARBAGE)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "dangling link":
        os.symlink("nothing-here", path)
    elif kind == "link out of the root":
        os.symlink(outside, path)
    else:
        assert kind == "link to another blob"
        os.symlink(os.path.relpath(counterpart, os.path.dirname(path)), path)


def stored_state(storage):
    """Every entry under the root with its type, size, mtime and link target."""
    state = {}
    for folder, folders, files in os.walk(storage.root):
        for entry in folders + files:
            path = os.path.join(folder, entry)
            status = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(status.st_mode) else None
            state[path] = (status.st_mode, status.st_size, status.st_mtime_ns, target)
    return state


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("where, kind", ODD_ENTRIES)
def test_what_the_registry_did_not_write_is_missing(
    client, storage, secret_file, where, kind, method
):
    address = plant(storage, kind, where, secret_file)
    headers = bearer(client, "a")
    before = stored_state(storage)
    response = client.open(address, method=method, headers=headers)
    assert response.status_code == 404
    assert stored_state(storage) == before
    if method == "HEAD":
        assert response.data == b""
    else:
        assert response.is_json
        assert [error["code"] for error in response.json["errors"]] == [PLACES[where]]


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
    assert not storage.has_blob(digest)
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
