"""Big files removed by a request are freed by a background thread, after it."""

import io
import os
import threading
import time

import pytest

from app.reference import compute_digest
from app.storage import background, filesystem, tree, uploads
from app.storage.collection import BLOBS
from app.storage.filesystem import FilesystemStorage
from tests.test_safe_writes import monolithic_push

NAME = "library/app"


@pytest.fixture(autouse=True)
def small_files_held(monkeypatch):
    """Hold files of any size, so that the tests' small blobs are held too."""
    monkeypatch.setattr(background, "HOLD_FROM_SIZE", 0)


@pytest.fixture
def released(monkeypatch):
    """Record what is handed to release_later: (inode, links left) of each file."""
    seen = []

    def record(held):
        if held is not None:
            status = os.fstat(held.descriptor)
            seen.append((status.st_ino, status.st_nlink))
            os.close(held.descriptor)

    monkeypatch.setattr(filesystem, "release_later", record)
    monkeypatch.setattr(tree, "release_later", record)
    monkeypatch.setattr(uploads, "release_later", record)
    return seen


def test_a_blob_pushed_again_is_freed_after_its_replacement(tmp_path, released):
    storage = FilesystemStorage(tmp_path)
    digest = storage.write_blob([b"layer bytes"])
    first = os.stat(storage._blob_path(digest)).st_ino
    released.clear()

    assert storage.write_blob([b"layer bytes"]) == digest

    # The first file was held open across the rename, its name already gone.
    assert released == [(first, 0)]
    assert os.stat(storage._blob_path(digest)).st_ino != first
    assert storage.read_blob(digest) == b"layer bytes"


def test_an_upload_committed_over_a_stored_blob_frees_it_afterwards(tmp_path, released):
    storage = FilesystemStorage(tmp_path)
    digest = storage.write_blob([b"layer bytes"])
    first = os.stat(storage._blob_path(digest)).st_ino
    upload_id = storage.create_upload(NAME)
    storage.append_upload(NAME, upload_id, io.BytesIO(b"layer bytes"))
    released.clear()

    storage.commit_upload(NAME, upload_id, compute_digest(b"layer bytes"))

    assert released == [(first, 0)]
    assert storage.read_blob(digest) == b"layer bytes"


def test_a_deleted_blob_is_freed_afterwards(tmp_path, released):
    storage = FilesystemStorage(tmp_path)
    digest = storage.write_blob([b"layer bytes"])
    inode = os.stat(storage._blob_path(digest)).st_ino
    released.clear()

    storage.delete_blob(digest)

    assert released == [(inode, 0)]
    assert not storage.has_blob(digest)


def test_a_cancelled_upload_is_freed_afterwards(tmp_path, released):
    storage = FilesystemStorage(tmp_path)
    upload_id = storage.create_upload(NAME)
    storage.append_upload(NAME, upload_id, io.BytesIO(b"half a layer"))
    inode = os.stat(storage._upload_path(upload_id, "data")).st_ino

    storage.cancel_upload(NAME, upload_id)

    assert released == [(inode, 0)]
    assert not os.path.exists(storage._upload_path(upload_id))


def test_nothing_is_held_where_there_is_no_file(tmp_path):
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    (tmp_path / "elsewhere").write_bytes(b"not to be held through a link")

    assert background.hold(tmp_path / "missing") is None
    assert background.hold(tmp_path / "link") is None


def test_a_held_file_is_closed_in_another_thread(tmp_path, monkeypatch):
    path = tmp_path / "big"
    path.write_bytes(b"blocks")
    closed_by = []
    real_close = os.close

    def close(descriptor):
        closed_by.append(threading.current_thread())
        real_close(descriptor)

    held = background.hold(path)
    os.unlink(path)
    monkeypatch.setattr(os, "close", close)

    background.release_later(held)

    deadline = time.monotonic() + 10
    while not closed_by and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed_by and closed_by[0] is not threading.current_thread()


def test_only_files_of_the_hold_size_or_more_are_held(tmp_path, monkeypatch):
    monkeypatch.setattr(background, "HOLD_FROM_SIZE", 100)
    (tmp_path / "small").write_bytes(b"x" * 99)
    (tmp_path / "large").write_bytes(b"x" * 100)

    assert background.hold(tmp_path / "small") is None
    held = background.hold(tmp_path / "large")
    assert held is not None and held.folder == str(tmp_path)
    os.close(held.descriptor)


def closed(descriptor):
    try:
        os.fstat(descriptor)
    except OSError:
        return True
    return False


def test_releases_within_a_request_wait_for_its_end(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"blocks")
    held = background.hold(path)
    os.unlink(path)

    background.defer_releases()
    try:
        background.release_later(held)
        time.sleep(0.2)
        assert not closed(held.descriptor)
    finally:
        background.release_deferred()

    deadline = time.monotonic() + 10
    while not closed(held.descriptor) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed(held.descriptor)


def test_a_push_frees_the_blob_it_replaced_after_its_own_writes(
    app, client, monkeypatch
):
    """The repository's link to the blob, written after the blob, comes first."""
    storage = app.extensions["registry_storage"]
    data = b"layer bytes"
    assert monolithic_push(client, data, "a").status_code == 201
    link = storage._record_path("b", BLOBS, compute_digest(data))
    link_there = []

    def release(released):
        link_there.append(os.path.exists(link))
        for held in released:
            os.close(held.descriptor)

    monkeypatch.setattr(background, "_release", release)

    assert monolithic_push(client, data, "b").status_code == 201

    deadline = time.monotonic() + 10
    while not link_there and time.monotonic() < deadline:
        time.sleep(0.01)
    assert link_there == [True]


def test_a_release_commits_the_freed_blocks_through_the_folder(tmp_path, monkeypatch):
    path = tmp_path / "big"
    path.write_bytes(b"blocks")
    held = background.hold(path)
    os.unlink(path)
    os.utime(tmp_path, (0, 0))
    events = []
    real_close, real_fsync = os.close, os.fsync

    def close(descriptor):
        events.append(("close", descriptor))
        real_close(descriptor)

    def fsync(descriptor):
        events.append(("fsync", os.fstat(descriptor).st_ino))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "fsync", fsync)

    background._release([held])

    # The file is closed first; then its folder, changed, is synced.
    assert events[:2] == [
        ("close", held.descriptor),
        ("fsync", os.stat(tmp_path).st_ino),
    ]
    assert os.stat(tmp_path).st_mtime > 0


def test_a_release_whose_folder_is_gone_only_closes(tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "data").write_bytes(b"half a layer")
    held = background.hold(folder / "data")
    (folder / "data").unlink()
    folder.rmdir()

    background._release([held])

    assert closed(held.descriptor)
