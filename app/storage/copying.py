"""Copying a request body into a file while hashing it, on two cores at once.

Writing a block into the page cache and hashing it both release the GIL, so
the hash of one block is computed in a second thread while the next block is
read and written: an upload keeps two cores busy instead of one. Streams that
offer ``readinto`` are read into a few reused buffers, which spares an
allocation and a copy for every block.
"""

import ctypes
import queue
import threading

BLOCK_SIZE = 1024 * 1024
# The disk is asked to start writing every this many bytes, so that the fsync
# before a blob is installed finds little left to write.
WRITEBACK_STEP = 16 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # from <linux/fs.h>: start writeback, do not wait
# Buffers in flight: one being filled, one being hashed, one waiting.
BUFFER_COUNT = 3


def copy_hashed(stream, output, hasher=None, progress=None):
    """Copy ``stream`` to ``output`` and feed every byte to ``hasher``.

    Returns the number of bytes copied. ``progress``, if given, is called with
    the size of each block. On failure the hasher has seen an unknown prefix.
    """
    if hasher is None:
        return _copy(stream, output, None, progress)
    if isinstance(stream, (list, tuple)):
        # Bytes already in memory (a manifest, a small blob): nothing to overlap
        # the hashing with, so no thread is worth starting for them.
        return _copy(stream, output, _InlineHashing(hasher), progress)
    with _HashingThread(hasher) as hashing:
        return _copy(stream, output, hashing, progress)


def _copy(stream, output, hashing, progress):
    free = queue.SimpleQueue()
    written = unsynced = 0
    for block, buffer in _blocks(stream, free):
        output.write(block)
        written += len(block)
        unsynced += len(block)
        if unsynced >= WRITEBACK_STEP:
            output.flush()
            _start_writeback(output.fileno())
            unsynced = 0
        if progress:
            progress(len(block))
        if hashing is not None:
            hashing.submit(block, free, buffer)
        elif buffer is not None:
            free.put(buffer)
    return written


def _blocks(stream, free):
    """Yield ``(block, buffer)``: each block and the reused buffer it lies in.

    A file object is read by blocks, into the buffers of ``free`` if it has
    ``readinto`` (the caller gives each buffer back when done with it); any
    other iterable yields its items of bytes.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        for _ in range(BUFFER_COUNT):
            free.put(bytearray(BLOCK_SIZE))
        while True:
            buffer = free.get()
            size = readinto(buffer)
            if not size:
                return
            yield memoryview(buffer)[:size], buffer
    elif hasattr(stream, "read"):
        while block := stream.read(BLOCK_SIZE):
            yield block, None
    else:
        for block in stream:
            yield block, None


class _InlineHashing:
    """Hashes each block as it is given, in the caller's thread."""

    def __init__(self, hasher):
        self.hasher = hasher

    def submit(self, block, free, buffer):
        self.hasher.update(block)
        if buffer is not None:
            free.put(buffer)


class _HashingThread:
    """A thread that hashes the blocks it is given, in order."""

    def __init__(self, hasher):
        self.hasher = hasher
        self.blocks = queue.Queue(maxsize=BUFFER_COUNT)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exception):
        self.blocks.put(None)
        self.thread.join()
        if self.error is not None and _exception[0] is None:
            raise self.error

    def submit(self, block, free, buffer):
        """Hash ``block``; then give ``buffer`` back to ``free`` (if not None)."""
        self.blocks.put((block, free, buffer))

    def _run(self):
        while (item := self.blocks.get()) is not None:
            block, free, buffer = item
            try:
                if self.error is None:
                    self.hasher.update(block)
            except BaseException as error:  # reported by __exit__
                self.error = error
            finally:
                if buffer is not None:
                    free.put(buffer)


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
