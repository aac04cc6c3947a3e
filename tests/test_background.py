"""Big files removed by a request are freed by a background thread, after it."""

import io
import os
import threading
import time

import pytest

from app.reference import compute_digest
from app.storage import background, filesystem, tree, uploads
from app.storage.filesystem import FilesystemStorage

NAME = "library/app"


@pytest.fixture
def released(monkeypatch):
    """Record what is handed to release_later: (inode, links left) of each file."""
    seen = []

    def record(descriptor):
        if descriptor is not None:
            status = os.fstat(descriptor)
            seen.append((status.st_ino, status.st_nlink))
            os.close(descriptor)

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
