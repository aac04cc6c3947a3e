"""Copying a body into a file while a second thread hashes it."""

import errno
import hashlib
import io
import os
import signal
import threading

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


def direct_io_works(folder):
    """Tell whether the file system under ``folder`` takes direct I/O."""
    probe = folder / "probe"
    with open(probe, "wb") as output:
        works = copying._set_direct(output.fileno(), True)
    probe.unlink()
    return works


class CountingWrites:
    """Counts the bytes written with os.write, the way direct writes go."""

    def __init__(self, monkeypatch, fail_after=None, error=errno.EINVAL):
        self.written = 0
        self.fail_after = fail_after
        self.error = error
        self.real_write = os.write
        monkeypatch.setattr(copying.os, "write", self.write)

    def write(self, descriptor, data):
        if self.fail_after is not None and self.written >= self.fail_after:
            raise OSError(self.error, os.strerror(self.error))
        count = self.real_write(descriptor, data)
        self.written += count
        return count


@pytest.mark.parametrize(
    "start, size",
    [
        (0, 8 * copying.BLOCK_SIZE),
        (0, 8 * copying.BLOCK_SIZE + 1),
        (0, 3 * copying.BLOCK_SIZE - 4096),
        (copying.BLOCK_SIZE, 2 * copying.BLOCK_SIZE + 99),
        (12345, 3 * copying.BLOCK_SIZE),
        (0, 100),
    ],
)
def test_appends_at_any_offset_land_whole_and_leave_the_file_positioned(
    tmp_path, monkeypatch, start, size
):
    path = tmp_path / "data"
    head, data = os.urandom(start), os.urandom(size)
    path.write_bytes(head)
    writes = CountingWrites(monkeypatch)

    with open(path, "r+b") as output:
        output.seek(start)
        copied = copy_hashed(io.BytesIO(data), output, hashlib.sha256())
        assert output.tell() == start + size
        output.write(b"after")

    assert copied == size
    assert path.read_bytes() == head + data + b"after"
    aligned_start = start % copying.ALIGNMENT == 0
    whole_blocks = size // copying.BLOCK_SIZE * copying.BLOCK_SIZE
    if aligned_start and direct_io_works(tmp_path):
        # Every whole block bypassed the page cache; the unaligned tail did not.
        assert writes.written >= whole_blocks
        assert writes.written <= size - size % copying.ALIGNMENT
    else:
        assert writes.written == 0


def test_a_file_system_refusing_direct_writes_gets_them_through_the_cache(
    tmp_path, monkeypatch
):
    data = os.urandom(4 * copying.BLOCK_SIZE)
    writes = CountingWrites(monkeypatch, fail_after=copying.BLOCK_SIZE)
    path = tmp_path / "data"

    with open(path, "wb") as output:
        assert copy_hashed(io.BytesIO(data), output, hashlib.sha256()) == len(data)
        assert output.tell() == len(data)

    assert path.read_bytes() == data
    assert writes.written <= copying.BLOCK_SIZE


def test_a_full_disk_stops_the_copy_and_reaches_the_caller(tmp_path, monkeypatch):
    if not direct_io_works(tmp_path):
        pytest.fail("the test folder's file system takes no direct I/O")
    data = io.BytesIO(os.urandom(64 * copying.BLOCK_SIZE))
    CountingWrites(monkeypatch, fail_after=copying.BLOCK_SIZE, error=errno.ENOSPC)

    with open(tmp_path / "data", "wb") as output, pytest.raises(OSError) as raised:
        copy_hashed(data, output, hashlib.sha256())

    assert raised.value.errno == errno.ENOSPC
    assert data.tell() < 64 * copying.BLOCK_SIZE  # it did not read on to the end


def test_buffers_are_kept_for_the_next_copies_but_no_more():
    for _ in range(3):
        copy_hashed(io.BytesIO(DATA), io.BytesIO(), hashlib.sha256())
    assert copying._SPARE.qsize() <= copying.SPARE_BUFFERS
    assert copying._SPARE.qsize() >= copying.BUFFER_COUNT


def test_a_forked_process_copies_with_threads_of_its_own():
    data = os.urandom(3 * copying.BLOCK_SIZE)
    copy_hashed(io.BytesIO(data), io.BytesIO(), hashlib.sha256())  # runners idle now
    child = os.fork()
    if child == 0:
        signal.alarm(30)  # a copy waiting for a runner that is not there ends
        hasher = hashlib.sha256()
        copy_hashed(io.BytesIO(data), io.BytesIO(), hasher)
        os._exit(0 if hasher.digest() == hashlib.sha256(data).digest() else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_runner_threads_are_reused_between_copies():
    copy_hashed(io.BytesIO(DATA), io.BytesIO(), hashlib.sha256())
    before = threading.active_count()
    for _ in range(5):
        copy_hashed(io.BytesIO(DATA), io.BytesIO(), hashlib.sha256())
    assert threading.active_count() == before
