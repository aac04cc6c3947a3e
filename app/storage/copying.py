"""Copying a request body into a file while hashing it, on two cores at once.

Writing a block and hashing it both release the GIL, so the hash of one block
is computed in a second thread while the next block is read and written: an
upload keeps two cores busy instead of one. Streams that offer ``readinto``
are read into a few reused, page-aligned buffers, which spares an allocation
and a copy for every block.

Blocks read that way go to the disk with direct I/O (``O_DIRECT``) while the
file's offset and the blocks stay aligned, bypassing the page cache: the bytes
are not copied into freshly allocated cache pages (on a virtual machine each
such page can cost a fault in the host too), and the fsync that makes the
blob durable finds nothing left to write. Where the file system refuses direct
I/O, or a block is not aligned (the last one, usually), writes go through the
page cache as before.
"""

import ctypes
import errno
import fcntl
import io
import mmap
import os
import queue
import threading

from app.storage.background import run_in_thread

BLOCK_SIZE = 1024 * 1024
# The disk is asked to start writing every this many bytes, so that the fsync
# before a blob is installed finds little left to write.
WRITEBACK_STEP = 16 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # from <linux/fs.h>: start writeback, do not wait
# Blocks waiting for a stage (writing, hashing): enough to ride out a stall
# of one stage, few enough to bound a copy's memory.
BUFFER_COUNT = 4
# Direct I/O wants the offset, the length and the memory of a write aligned to
# the device's logical block; a page is a multiple of every common one.
ALIGNMENT = mmap.PAGESIZE
O_DIRECT = getattr(os, "O_DIRECT", 0)
# Buffers kept for the next blocks of a process, warm and already mapped: as
# many as one copy has in flight (read, queued and worked on by each stage).
SPARE_BUFFERS = 2 * BUFFER_COUNT + 4


def copy_hashed(stream, output, hasher=None, progress=None):
    """Copy ``stream`` to ``output`` and feed every byte to ``hasher``.

    Returns the number of bytes copied. ``progress``, if given, is called with
    the size of each block. On failure the hasher has seen an unknown prefix.
    """
    if hasher is None or isinstance(stream, (list, tuple)):
        # Nothing to hash, or bytes already in memory (a manifest, a small
        # blob): no thread is worth starting for them.
        return _copy_inline(stream, output, hasher, progress)
    hashing = Hashing(hasher)
    written = copy_hashing(stream, output, hashing, progress)
    hashing.result()
    return written


def copy_hashing(stream, output, hashing, progress=None):
    """Copy ``stream`` to ``output``; ``hashing`` (a Hashing) hashes it meanwhile.

    Returns the number of bytes copied once they are all written; the last
    blocks may still be hashing then (``hashing.result()`` waits for them), so
    that an upload in several requests is hashed in one go, not in steps
    that each end waiting for the hash to catch up.

    Each block is read, written and hashed in three threads, in turn: a block
    is written while the next one is read and the one before is hashed.
    """
    writer = _Writer(output)
    hashing_stage = hashing.stage()
    writing = _Stage(writer.write, hashing_stage.submit)
    written = 0
    try:
        for block, buffer in _blocks(stream):
            writing.submit(block, buffer)
            written += len(block)
            if progress:
                progress(len(block))
            if writing.error or hashing_stage.error:
                break
    finally:
        writing.finish()
        hashing_stage.close()
        writer.close()
    if writing.error is not None:
        raise writing.error
    return written


class Hashing:
    """A hasher fed by one copy after another, in the background, in order."""

    def __init__(self, hasher):
        self.hasher = hasher
        self.last = None  # the stage hashing the latest copy's blocks

    @property
    def name(self):
        return self.hasher.name

    def stage(self):
        """Return a stage for the next copy's blocks, after the previous copy's."""
        self.last = _Stage(self._update, _give_back, after=self.last)
        return self.last

    def _update(self, block, buffer):
        self.hasher.update(block)

    def result(self):
        """Return the hasher once every block given is hashed; raise its error."""
        if self.last is not None:
            self.last.finished.wait()
            if self.last.error is not None:
                raise self.last.error
        return self.hasher


def _copy_inline(stream, output, hasher, progress):
    writer = _Writer(output)
    written = 0
    try:
        for block, buffer in _blocks(stream):
            writer.write(block, buffer)
            if hasher is not None:
                hasher.update(block)
            written += len(block)
            if progress:
                progress(len(block))
            _give_back(block, buffer)
    finally:
        writer.close()
    return written


class _Stage:
    """A thread doing ``work(block, buffer)`` for each block it is given, in order.

    Each block then goes on to ``following(block, buffer)``: the next stage, or
    back to the spare buffers. A stage made ``after`` another starts once that
    one has finished, and inherits its error. After an error the thread only
    passes blocks on; ``error`` tells it.
    """

    def __init__(self, work, following, after=None):
        self.work = work
        self.following = following
        self.after = after
        self.blocks = queue.Queue(maxsize=BUFFER_COUNT)
        self.error = None
        self.finished = threading.Event()
        run_in_thread(self._run)

    def submit(self, block, buffer):
        self.blocks.put((block, buffer))

    def close(self):
        """Say that no more blocks will come; the thread ends after the last."""
        self.blocks.put(None)

    def finish(self):
        """Wait until every block given has been dealt with."""
        self.close()
        self.finished.wait()

    def _run(self):
        try:
            if self.after is not None:
                self.after.finished.wait()
                self.error = self.after.error
                self.after = None
            while (item := self.blocks.get()) is not None:
                self._pass_on(*item)
        finally:
            self.finished.set()

    def _pass_on(self, block, buffer):
        try:
            if self.error is None:
                self.work(block, buffer)
        except BaseException as error:  # raised where the stage is waited for
            self.error = error
        finally:
            self.following(block, buffer)


def _blocks(stream):
    """Yield ``(block, buffer)``: each block and the reused buffer it lies in.

    A file object is read by blocks, into spare buffers if it has ``readinto``
    (whoever deals with a block last gives its buffer back); any other
    iterable yields its items of bytes, with no buffer.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        while True:
            buffer = _take_buffer()
            size = readinto(buffer)
            if not size:
                _give_back(None, buffer)
                return
            yield memoryview(buffer)[:size], buffer
    elif hasattr(stream, "read"):
        while block := stream.read(BLOCK_SIZE):
            yield block, None
    else:
        for block in stream:
            yield block, None


_SPARE = queue.SimpleQueue()


def _take_buffer():
    """Return a page-aligned buffer of BLOCK_SIZE bytes, a spare one if any."""
    try:
        return _SPARE.get_nowait()
    except queue.Empty:
        return mmap.mmap(-1, BLOCK_SIZE)


def _give_back(block, buffer):
    """Keep a block's buffer for the next blocks, up to SPARE_BUFFERS of them."""
    if buffer is not None and _SPARE.qsize() < SPARE_BUFFERS:
        _SPARE.put(buffer)


class _Writer:
    """Writes blocks to a file: direct I/O while they stay aligned, else cached.

    Direct writes go through the file's descriptor, at its offset, after the
    file object has been flushed; the object asks the descriptor where it
    stands, so it follows.
    """

    def __init__(self, output):
        self.output = output
        self.descriptor = None
        self.direct = False
        self.unsynced = 0
        fileno = getattr(output, "fileno", None)
        if fileno is None or not O_DIRECT:
            return
        try:
            output.flush()
            self.descriptor = fileno()
            start = os.lseek(self.descriptor, 0, os.SEEK_CUR)
        except (OSError, ValueError, io.UnsupportedOperation):
            self.descriptor = None
            return
        if start % ALIGNMENT == 0:
            self.direct = _set_direct(self.descriptor, True)

    def write(self, block, buffer):
        """Write ``block``; direct I/O only for a block at the start of a buffer."""
        if self.direct and buffer is not None and len(block) % ALIGNMENT == 0:
            block = self._write_direct(block)
            if not block:
                return
        if self.direct:
            self._stop_direct()
        self.output.write(block)
        self.unsynced += len(block)
        if self.unsynced >= WRITEBACK_STEP and self.descriptor is not None:
            self.output.flush()
            _start_writeback(self.descriptor)
            self.unsynced = 0

    def _write_direct(self, block):
        """Write what direct I/O takes of ``block``; return the rest, if any."""
        view = memoryview(block)
        while view:
            try:
                view = view[os.write(self.descriptor, view) :]
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                break  # refused after all: the page cache takes the rest
            if len(view) % ALIGNMENT:
                break
        return view

    def _stop_direct(self):
        self.direct = False
        _set_direct(self.descriptor, False)

    def close(self):
        if self.direct:
            self._stop_direct()


def _set_direct(descriptor, on):
    """Switch direct I/O on or off for a descriptor; tell whether it is on now."""
    try:
        flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
        flags = flags | O_DIRECT if on else flags & ~O_DIRECT
        fcntl.fcntl(descriptor, fcntl.F_SETFL, flags)
    except OSError:
        return False
    return on


def _find_sync_file_range():
    """Return libc's sync_file_range(2), or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _find_sync_file_range()


def _start_writeback(descriptor):
    """Have the kernel start writing a file's dirty pages to disk, without waiting.

    Only a head start for the fsync that makes the file durable; where the
    call is missing or fails, that fsync simply has more to do.
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(descriptor, 0, 0, SYNC_FILE_RANGE_WRITE)
