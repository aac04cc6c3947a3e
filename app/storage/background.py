"""Work a request hands to a thread of its own, so that it need not wait for it.

Threads are kept for reuse once their work is done: a thread that is started
waits for the GIL before its starter may go on, which an upload in many small
requests would otherwise pay twice a request.

Large files are let go of here too. Removing the last name of a file that
nothing holds open frees its blocks there and then, and on a file system
mounted with ``discard`` that means telling the disk about every extent: tens
of milliseconds for a few hundred MiB, spent by the next fsync on that file
system, whoever makes it. A file held open while its name goes keeps its
blocks until it is closed. The closing is done by a background thread once
the request that let go of the file has ended (within a request, the
releases wait for its end: its own fsyncs come first), and the thread then
makes the file system commit the freeing itself, so that no request's fsync
pays for it. It does so with ``sync``, the storage tree's own fsync of a file
or folder.
"""

import os
import queue
import stat
import threading
from dataclasses import dataclass

# Threads kept waiting for work; more than that many idle ones end.
IDLE_RUNNERS_KEPT = 16
# Smaller files are removed the usual way: the disk forgets their few extents
# at next to no cost, less than holding them would.
HOLD_FROM_SIZE = 1024 * 1024

_IDLE_RUNNERS = queue.SimpleQueue()


def run_in_thread(function):
    """Run ``function()`` in an idle runner thread, or in a new one."""
    try:
        jobs = _IDLE_RUNNERS.get_nowait()
    except queue.Empty:
        jobs = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(jobs,), daemon=True).start()
    jobs.put(function)


def _serve(jobs):
    """Run the functions put in ``jobs``; end when too many runners are idle."""
    while True:
        jobs.get()()
        if _IDLE_RUNNERS.qsize() >= IDLE_RUNNERS_KEPT:
            return
        _IDLE_RUNNERS.put(jobs)


def _forget_runners():
    """In a forked child: the parent's idle runners are not there to run."""
    global _IDLE_RUNNERS
    _IDLE_RUNNERS = queue.SimpleQueue()


os.register_at_fork(after_in_child=_forget_runners)


@dataclass(frozen=True)
class Held:
    """An open descriptor keeping a removed file's blocks, and where it was."""

    descriptor: int
    folder: str


def hold(path):
    """Open the file at ``path`` (not following a link) to keep its blocks.

    Returns a Held, for ``release_later``, or None when there is no file of
    HOLD_FROM_SIZE bytes or more there to hold (or it cannot be opened): it
    is then removed the usual way.
    """
    try:
        status = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size < HOLD_FROM_SIZE:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return None
    return Held(descriptor, os.path.dirname(path))


_REQUEST = threading.local()


def defer_releases():
    """From now on in this thread, hold releases until ``release_deferred``."""
    _REQUEST.deferred = []


def release_deferred(_error=None):
    """Release in the background what was held back since ``defer_releases``.

    It is a Flask teardown function too, which is given the request's error.
    """
    deferred = getattr(_REQUEST, "deferred", None)
    _REQUEST.deferred = None
    if deferred:
        run_in_thread(lambda: _release(deferred))


def release_later(held):
    """Close a Held in a background thread, once the current request has ended."""
    if held is None:
        return
    deferred = getattr(_REQUEST, "deferred", None)
    if deferred is not None:
        deferred.append(held)
    else:
        run_in_thread(lambda: _release([held]))


def _release(released):
    """Close each descriptor, then have the freed blocks committed now.

    A change to the folder each file was in joins the transaction that holds
    the freeing, and its fsync commits that transaction (and tells the disk
    of the freed extents) here rather than in the next request's fsync.
    """
    for held in released:
        os.close(held.descriptor)
    for folder in {held.folder for held in released}:
        try:
            os.utime(folder)
            sync(folder)
        except OSError:
            # The folder is gone (whoever removed it committed that), or the
            # fsync failed: only a head start, the next commit frees the blocks.
            continue


def sync(path):
    """Flush a file's or a folder's content and metadata to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
