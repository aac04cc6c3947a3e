"""The web UI shows what it can read: one odd entry in the tree leaves out
that item, never the page.

A tester may put anything where the registry keeps a file or a folder: a
FIFO, a folder, a link loop, a dangling link, a link out of the root, a file
edited by hand, a link from one blob's place to another blob's file. Every
page still answers 200 with everything else on it, and the page of the odd
item itself answers as a missing one does.
"""

import os

import pytest

from app.reference import compute_digest
from tests.conftest import seed_image
from tests.test_safety import blob_file, replace_with

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FILE_KINDS = ["fifo", "folder", "loop", "dangling link", "link out of the root"]
FOLDER_KINDS = ["file", "fifo", "loop", "dangling link", "link out of the root"]
# Where something odd is put: a file or a folder of image a:latest.
FILES = [
    "tag",
    "manifest record",
    "manifest blob",
    "config blob",
    "layer blob",
    "layer record",
    "referrer record",
]
FOLDERS = ["tags folder", "repository"]
HAND_EDITED = ["tag", "manifest record", "referrer record"]
ODD_ENTRIES = (
    [(where, kind) for where in FILES for kind in FILE_KINDS]
    + [(where, kind) for where in FOLDERS for kind in FOLDER_KINDS]
    + [(where, "garbage") for where in HAND_EDITED]
    + [(where, "link to another blob") for where in FILES if "blob" in where]
)
# Places whose odd entry makes manifest a:latest itself unreadable.
MANIFEST_PLACES = {"manifest record", "manifest blob", "repository"}
PAGES = ["/ui/", "/ui/storage", "/ui/repositories/b", "/ui/manifests/b/v1"]
BROWSER = {"Accept": "text/html"}
B_LAYER = b"a layer of b"


@pytest.fixture
def put(storage, tmp_path):
    """Store a:latest (also a:second) with two referrers, a:other and b:v1,
    each image with a config and layers of its own; return a function that
    puts a kind of odd entry in place of a file or folder of a:latest and
    returns the digests of a:latest and a:other."""
    latest = seed_image(storage, "a", "latest", config={"os": "linux", "n": 1})
    storage.tag_manifest("a", "second", latest["digest"])
    other = seed_image(storage, "a", "other", (b"a layer of other",), {"n": 2})
    seed_image(storage, "b", "v1", (B_LAYER,), {"n": 3})
    for referrer in (other["digest"], compute_digest(b"a signature")):
        descriptor = {"mediaType": OCI_MANIFEST, "digest": str(referrer), "size": 2}
        storage.add_referrer("a", latest["digest"], descriptor)
    outside = tmp_path / "outside"
    outside.write_bytes(b'{"outside": "the root"}')
    manifest = latest["digest"]
    config, layer = compute_digest(latest["config"]), compute_digest(b"layer one")
    repository = os.path.join(storage.root, "repos", "a")
    referrers = os.path.join(repository, "_referrers", "sha256", manifest.hex)
    places = {
        "tag": os.path.join(repository, "_tags", "latest"),
        "manifest record": os.path.join(
            repository, "_manifests", "sha256", manifest.hex
        ),
        "manifest blob": blob_file(storage, manifest),
        "config blob": blob_file(storage, config),
        "layer blob": blob_file(storage, layer),
        "layer record": os.path.join(repository, "_blobs", "sha256", layer.hex),
        "referrer record": os.path.join(referrers, f"sha256-{other['digest'].hex}"),
        "tags folder": os.path.join(repository, "_tags"),
        "repository": repository,
    }

    def put_odd_entry(where, kind):
        another = blob_file(storage, compute_digest(B_LAYER))
        replace_with(places[where], kind, outside, another)
        return manifest, other["digest"]

    return put_odd_entry


def json_page(client, path):
    response = client.get(path, query_string={"format": "json"})
    assert (response.status_code, response.mimetype) == (200, "application/json")
    return response.json


@pytest.mark.parametrize("where, kind", ODD_ENTRIES)
def test_every_other_page_answers(client, put, where, kind):
    manifest, other = put(where, kind)
    pages_of_a = ["/ui/repositories/a", f"/ui/manifests/a/{other}"]
    pages = PAGES + ([] if where == "repository" else pages_of_a)
    for page in pages:
        json_page(client, page)
        response = client.get(page, headers=BROWSER)
        assert (response.status_code, response.mimetype) == (200, "text/html")
    response = client.get(f"/ui/manifests/a/{manifest}?format=json")
    if where in MANIFEST_PLACES:
        missing = "NAME_UNKNOWN" if where == "repository" else "MANIFEST_UNKNOWN"
        assert response.status_code == 404
        assert [error["code"] for error in response.json["errors"]] == [missing]
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("where, kind", ODD_ENTRIES)
def test_the_odd_item_alone_is_left_out(client, put, where, kind):
    manifest, _other = put(where, kind)
    expected = {"b"} if where == "repository" else {"a", "b"}
    for page in ("/ui/", "/ui/storage"):
        listed = json_page(client, page)["repositories"]
        assert {row["name"] for row in listed} == expected
    if where == "repository":
        return
    tags = {"latest", "second", "other"}
    if where == "tags folder":
        tags = set()
    elif where == "tag":
        tags -= {"latest"}
    elif where in MANIFEST_PLACES:
        tags = {"other"}
    shown = json_page(client, "/ui/repositories/a")["tags"]
    assert {tag["tag"] for tag in shown} == tags
    if where not in MANIFEST_PLACES:
        page = json_page(client, f"/ui/manifests/a/{manifest}")
        [group] = page["referrers"]
        assert len(group["referrers"]) == (1 if where == "referrer record" else 2)
        assert "outside" not in str(page)


@pytest.mark.parametrize("entry", ["..+..+etc", "a+..+..+etc", "Bad Name", ".hidden"])
def test_a_catalog_entry_that_names_no_repository_is_left_out(client, storage, entry):
    seed_image(storage, "a", "latest")
    open(os.path.join(storage.root, "catalog", entry), "wb").close()
    for page in ("/ui/", "/ui/storage"):
        assert [row["name"] for row in json_page(client, page)["repositories"]] == ["a"]
        response = client.get(page, headers=BROWSER)
        assert (response.status_code, response.mimetype) == (200, "text/html")
    assert json_page(client, "/ui/storage")["whole_store"] is True
