"""/metrics around entries the registry did not write in a blob's place.

A scrape counts the blobs it can read and answers; what stands where a blob's
file should be (a folder, a FIFO, a link) is not counted.
"""

import os

import pytest

from app.reference import compute_digest
from tests.conftest import seed_image
from tests.test_metrics import scrape, value
from tests.test_safety import blob_file, replace_with

ODD = compute_digest(b"what stands here was never pushed")
KINDS = ["folder", "fifo", "loop", "dangling link", "link out of the root"]


@pytest.fixture
def outside(tmp_path):
    """A folder outside the root, holding a file; links leading out name it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_bytes(b"outside the storage root")
    return folder


# What may stand where the registry keeps a blob's file, for a scrape.
BLOB_KINDS = [*KINDS, "link to another blob"]


@pytest.mark.parametrize("kind", BLOB_KINDS)
def test_metrics_count_the_blobs_they_can_read(client, storage, outside, kind):
    image = seed_image(storage, "a", "latest")
    path = blob_file(storage, ODD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    layer = blob_file(storage, compute_digest(image["layers"][0]))
    replace_with(path, kind, outside / "secret", layer)
    parts = [image["manifest"], image["config"], *image["layers"]]
    samples = scrape(client)
    assert value(samples, "registry_storage_blobs") == len(parts)
    assert value(samples, "registry_storage_bytes") == sum(map(len, parts))


@pytest.mark.parametrize("kind", ["file", "fifo", "loop", "link out of the root"])
def test_metrics_pass_over_an_odd_folder_of_blobs(client, storage, outside, kind):
    image = seed_image(storage, "a", "latest")
    prefix = os.path.dirname(blob_file(storage, ODD))
    assert not os.path.exists(prefix)  # no real blob shares the folder
    replace_with(prefix, kind, outside)
    parts = [image["manifest"], image["config"], *image["layers"]]
    samples = scrape(client)
    assert value(samples, "registry_storage_blobs") == len(parts)


def test_metrics_pass_over_a_blob_removed_since_the_listing(
    client, storage, monkeypatch
):
    image = seed_image(storage, "a", "latest")
    listed = storage.list_blobs()
    monkeypatch.setattr(storage, "list_blobs", lambda: [*listed, ODD])
    parts = [image["manifest"], image["config"], *image["layers"]]
    samples = scrape(client)
    assert value(samples, "registry_storage_blobs") == len(parts)
