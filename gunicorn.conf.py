"""gunicorn settings for the registry: ``gunicorn`` in this folder reads them.

Pass ``--bind HOST:PORT`` (or set GUNICORN_CMD_ARGS) to listen elsewhere.
The worker settings below were chosen with ``python bench/run.py`` and the
measurements are in BENCHMARKS.md.
"""

import ctypes
import ctypes.util
import multiprocessing
import os
import shutil
import sys
import tempfile

wsgi_app = "wsgi:app"
bind = ["127.0.0.1:5080"]

# Threaded workers: a long blob upload or download holds one thread, not a
# whole process, and the worker keeps answering the arbiter's heartbeat
# meanwhile, so transfers of any length are not killed by ``timeout``.
# It is gunicorn's gthread worker made safe from slow clients: a request head
# must be in REGISTRY_HEADER_TIMEOUT seconds (10) after the connection opens
# (or its first byte, on a kept-alive connection), a body or response may stall
# for REGISTRY_BODY_TIMEOUT seconds (120), and requests gunicorn refuses are
# answered in the OCI error format. See registry_worker.py.
#
# Two processes a core. A request's Python code holds its process's GIL, and
# each process's main thread reads every request head and hands the request to
# a thread: with one process a core, that main thread held the GIL for nearly
# half of the time (py-spy --gil under wrk), and small requests queued behind
# it. Measured on 2 cores, each configuration started afresh and measured 3
# times in turn (manifest GETs, wrk -c 32): 2x32 gave 4,795 requests/s at 360
# us of CPU each, 3x32 5,128, 4x32 5,284 at 350 us, 6x16 5,462; p99 rose from
# 24-28 to 25-36 ms, still half of distribution's. In another side-by-side
# run, 2x32 gave 4,070-4,270/s and 4x32 5,320-5,690/s.
# Since the main thread answers a kept-alive connection's manifest and tag
# list reads itself (no hand-off), the two are close: side by side, 2x32 gave
# 9,240-9,510 manifest GETs/s and 4x32 8,760-9,530 (p99 6-7 against 8-10 ms),
# and the benchmark's tag lists and catalogs differed by less than the noise.
# Four processes are kept, for the uploads and downloads served in threads.
# 32 threads, not 8, so that 32 kept-alive clients (wrk -c 32, or docker's
# parallel layer transfers) are each served at once: measured on 2 cores,
# manifest GETs went from about 850 to 1,400 a second and p99 from 165 to
# 85-160 ms.
worker_class = "registry_worker.RegistryWorker"
workers = 2 * multiprocessing.cpu_count()
threads = 32
timeout = 60
keepalive = 5

# Blobs are handed to the kernel with sendfile(2) through the WSGI file wrapper,
# as gunicorn does by default: any value of its ``sendfile`` setting, True too,
# means --no-sendfile, so it is left unset.

accesslog = "-"
logger_class = "accesslog.RedactingLogger"

# No runtime control socket: its default path is one per user, so several
# registries on one machine would take it from each other.
control_socket_disable = True

# Metrics: every worker writes its counters into one folder that /metrics sums.
# prometheus_client reads this variable when a worker first imports it, so it is
# set here, in the arbiter, before any worker is forked.
METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Upload bodies are read 1 MiB at a time, and gunicorn allocates a fresh
# buffer for each read. glibc serves such sizes with mmap (or trims its heap
# after each free), so every block cost 256 page faults: a 256 MiB push took
# 116,000 of them and 1.35 s of CPU. Keeping these sizes on the heap brought
# that to a few faults and 1.0 s; each worker thread's heap may then keep up
# to MALLOC_KEEP bytes unused.
MALLOC_KEEP = 4 * 1024 * 1024

# An upload's blocks pass between three threads (receiving, writing, hashing),
# and a thread back from a write or a hash waits for the GIL for as long as
# the switch interval (5 ms by default) while another runs Python code. At
# 0.5 ms, two side-by-side runs of 6 pushes of each kind against one server
# with the default gave monolithic 1,118 against 1,013 and 936 against 834
# MiB/s, chunked 915/874 and 722/711, streamed 893/866 and 764/718; manifest
# GETs showed no difference beyond the noise.
SWITCH_INTERVAL = 0.0005
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def on_starting(server):
    """Give the workers a fresh, empty folder for their metric values."""
    folder = tempfile.mkdtemp(prefix="registry-metrics-")
    os.environ[METRICS_FOLDER_VARIABLE] = folder
    server.log.info("Metrics of all workers are kept in %s", folder)


def post_fork(server, worker):
    """Hand the GIL on sooner; keep upload-sized blocks on glibc's heap."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    library = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(library), "mallopt", None) if library else None
    if mallopt is not None:  # glibc only
        mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP)
        mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP)


def child_exit(server, worker):
    """Drop an exited worker's live values; its counters still count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder when gunicorn stops."""
    folder = os.environ.pop(METRICS_FOLDER_VARIABLE, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
