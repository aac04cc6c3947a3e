"""Copying a body into a file while a second thread hashes it."""

import hashlib
import io
import os

import pytest

from app.storage import copying
from app.storage.copying import copy_hashed

DATA = os.urandom(3 * copying.BLOCK_SIZE + 12345)


class ReadOnly:
    """A stream with ``read`` and nothing else, like a WSGI input."""

    def __init__(self, data):
        self.stream = io.BytesIO(data)

    def read(self, size=-1):
        return self.stream.read(size)


class FailingAfter(ReadOnly):
    """A stream that raises once ``limit`` bytes have been read."""

    def __init__(self, data, limit):
        super().__init__(data)
        self.limit = limit

    def readinto(self, buffer):
        if self.stream.tell() >= self.limit:
            raise ConnectionResetError("cut")
        return self.stream.readinto(buffer)


@pytest.mark.parametrize(
    "stream",
    [io.BytesIO(DATA), ReadOnly(DATA), [DATA[:100], DATA[100:]]],
    ids=["readinto", "read", "iterable"],
)
def test_copy_writes_and_hashes_every_byte(stream):
    output, hasher = io.BytesIO(), hashlib.sha256()

    copied = copy_hashed(stream, output, hasher)

    assert copied == len(DATA) and output.getvalue() == DATA
    assert hasher.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_copy_hashes_with_sha512_and_reports_progress():
    output, hasher, sizes = io.BytesIO(), hashlib.sha512(), []

    copy_hashed(io.BytesIO(DATA), output, hasher, sizes.append)

    assert sum(sizes) == len(DATA)
    assert hasher.hexdigest() == hashlib.sha512(DATA).hexdigest()


def test_copy_without_hasher_still_copies():
    output = io.BytesIO()

    assert copy_hashed(ReadOnly(DATA), output) == len(DATA)
    assert output.getvalue() == DATA


def test_copy_of_an_empty_stream_hashes_nothing():
    hasher = hashlib.sha256()

    assert copy_hashed(io.BytesIO(), io.BytesIO(), hasher) == 0
    assert hasher.hexdigest() == hashlib.sha256().hexdigest()


def test_a_read_error_reaches_the_caller():
    stream = FailingAfter(DATA, 2 * copying.BLOCK_SIZE)

    with pytest.raises(ConnectionResetError):
        copy_hashed(stream, io.BytesIO(), hashlib.sha256())


def test_a_hashing_error_reaches_the_caller():
    class Broken:
        def update(self, block):
            raise ValueError("broken hasher")

    with pytest.raises(ValueError, match="broken hasher"):
        copy_hashed(io.BytesIO(DATA), io.BytesIO(), Broken())


def test_copies_past_a_writeback_step_reach_a_real_file_whole(tmp_path):
    path = tmp_path / "data"
    size = copying.WRITEBACK_STEP + copying.BLOCK_SIZE
    data = os.urandom(size)

    with open(path, "wb") as output:
        copied = copy_hashed(io.BytesIO(data), output, hashlib.sha256())

    assert copied == size
    assert path.read_bytes() == data


def test_bytes_in_memory_are_hashed_without_a_thread(monkeypatch):
    started = []
    monkeypatch.setattr(copying.threading.Thread, "start", started.append)
    output = io.BytesIO()
    hasher = hashlib.sha256()
    assert copy_hashed([b"a manifest"], output, hasher) == 10
    assert hasher.hexdigest() == hashlib.sha256(b"a manifest").hexdigest()
    assert started == []
