"""An upload in several chunks is hashed in the background, in order.

A chunk's request answers once its bytes are written; the hash of its last
blocks may still be running when the next chunk or the commit comes.
"""

import hashlib
import io
import os
import threading
import time

import pytest

from app.reference import parse_digest
from app.storage import copying
from app.storage.errors import DigestMismatch

CHUNKS = [os.urandom(size) for size in (3 * 2**20, 2**20 + 5, 7, 2 * 2**20)]
WHOLE = b"".join(CHUNKS)
DIGEST = parse_digest("sha256:" + hashlib.sha256(WHOLE).hexdigest())


@pytest.fixture
def slow_hashing(monkeypatch):
    """Make each block's hash take a while, so it lags behind the writing."""
    update = copying.Hashing._update

    def slow(self, block, buffer):
        time.sleep(0.02)
        update(self, block, buffer)

    monkeypatch.setattr(copying.Hashing, "_update", slow)


def append_all(storage, name="a"):
    upload = storage.create_upload(name)
    size = 0
    for chunk in CHUNKS:
        size = storage.append_upload(name, upload, io.BytesIO(chunk), start=size)
    return upload


def test_chunks_hashed_behind_the_writing_give_the_blob(storage, slow_hashing):
    upload = append_all(storage)
    assert storage.upload_size("a", upload) == len(WHOLE)

    assert storage.commit_upload("a", upload, DIGEST) == DIGEST
    assert storage.read_blob(DIGEST) == WHOLE


def test_a_wrong_digest_is_still_refused(storage, slow_hashing):
    upload = append_all(storage)
    wrong = parse_digest("sha256:" + hashlib.sha256(b"other").hexdigest())

    with pytest.raises(DigestMismatch):
        storage.commit_upload("a", upload, wrong)
    assert not storage.has_blob(wrong) and not storage.has_blob(DIGEST)


def test_a_hash_that_failed_in_the_background_is_done_again_from_disk(
    storage, monkeypatch
):
    calls = []
    update = copying.Hashing._update

    def failing(self, block, buffer):
        calls.append(len(block))
        if len(calls) == 2:
            raise MemoryError("hashing failed")
        update(self, block, buffer)

    monkeypatch.setattr(copying.Hashing, "_update", failing)
    upload = append_all(storage)

    assert storage.commit_upload("a", upload, DIGEST) == DIGEST
    assert len(calls) >= 2


def test_chunk_requests_do_not_wait_for_the_hash(storage, monkeypatch):
    release = threading.Event()
    update = copying.Hashing._update

    def held(self, block, buffer):
        release.wait(timeout=30)
        update(self, block, buffer)

    monkeypatch.setattr(copying.Hashing, "_update", held)
    upload = storage.create_upload("a")
    size = storage.append_upload("a", upload, io.BytesIO(CHUNKS[0]), start=0)
    # Written, answered, while not one block has been hashed.
    assert size == len(CHUNKS[0]) and not release.is_set()
    size = storage.append_upload("a", upload, io.BytesIO(CHUNKS[1]), start=size)
    release.set()
    digest = parse_digest("sha256:" + hashlib.sha256(CHUNKS[0] + CHUNKS[1]).hexdigest())

    assert storage.commit_upload("a", upload, digest) == digest
