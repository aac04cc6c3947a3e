"""Files are synced to disk before their rename into place, folders after it."""

import io
import os

import pytest

from app.reference import compute_digest
from app.storage.filesystem import FilesystemStorage


@pytest.fixture
def disk_events(monkeypatch):
    """Record, in order, every fsync (by path) and every rename into place."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, destination):
        events.append(("replace", os.fspath(source), os.fspath(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def synced_before_and_after(events, destination):
    """Whether the renamed file was synced before, and its folder after, the rename."""
    [rename] = [event for event in events if event[:1] == ("replace",)]
    position = events.index(rename)
    return (
        ("fsync", rename[1]) in events[:position],
        ("fsync", os.path.dirname(destination)) in events[position:],
    )


def test_a_blob_is_synced_then_renamed_then_its_folder_synced(tmp_path, disk_events):
    storage = FilesystemStorage(tmp_path)

    digest = storage.write_blob([b"durable content"])

    path = storage._blob_path(digest)
    assert synced_before_and_after(disk_events, path) == (True, True)


def test_a_committed_upload_is_synced_before_it_becomes_a_blob(tmp_path, disk_events):
    storage = FilesystemStorage(tmp_path)
    upload_id = storage.create_upload("library/app")
    storage.append_upload("library/app", upload_id, io.BytesIO(b"uploaded bytes"))
    disk_events.clear()

    digest = storage.commit_upload(
        "library/app", upload_id, compute_digest(b"uploaded bytes")
    )

    path = storage._blob_path(digest)
    assert synced_before_and_after(disk_events, path) == (True, True)
