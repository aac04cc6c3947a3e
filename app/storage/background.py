"""Work a request hands to a thread of its own, so that it need not wait for it.

Threads are kept for reuse once their work is done: a thread that is started
waits for the GIL before its starter may go on, which an upload in many small
requests would otherwise pay twice a request.

Large files are let go of here too. Removing the last name of a file that
nothing holds open frees its blocks there and then, and on a file system
mounted with ``discard`` that means telling the disk about every extent: tens
of milliseconds for a few hundred MiB, spent by whoever removed the name. A
file held open while its name goes keeps its blocks until it is closed, and
the closing is done by a background thread, after the answer has gone.
"""

import os
import queue
import threading

# Threads kept waiting for work; more than that many idle ones end.
IDLE_RUNNERS_KEPT = 16

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


def hold(path):
    """Open the file at ``path`` (not following a link) to keep its blocks.

    Returns the descriptor, for ``release_later``, or None when there is
    nothing there to hold (or it cannot be opened: it is then removed the
    usual way).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(path, flags)
    except OSError:
        return None


def release_later(descriptor):
    """Close a descriptor from ``hold`` in a background thread."""
    if descriptor is not None:
        run_in_thread(lambda: os.close(descriptor))
