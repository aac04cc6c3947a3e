"""gunicorn settings for the registry: ``gunicorn`` in this folder reads them.

Pass ``--bind HOST:PORT`` (or set GUNICORN_CMD_ARGS) to listen elsewhere.
"""

import multiprocessing
import os
import shutil
import tempfile

wsgi_app = "wsgi:app"
bind = ["127.0.0.1:5080"]

# Threaded workers: a long blob upload or download holds one thread, not a
# whole process, and the worker keeps answering the arbiter's heartbeat
# meanwhile, so transfers of any length are not killed by ``timeout``.
worker_class = "gthread"
workers = multiprocessing.cpu_count()
threads = 8
timeout = 60
keepalive = 5

# Blobs are handed to the kernel with sendfile(2) through the WSGI file wrapper.
sendfile = True
accesslog = "-"
logger_class = "accesslog.RedactingLogger"

# No runtime control socket: its default path is one per user, so several
# registries on one machine would take it from each other.
control_socket_disable = True

# Metrics: every worker writes its counters into one folder that /metrics sums.
# prometheus_client reads this variable when a worker first imports it, so it is
# set here, in the arbiter, before any worker is forked.
METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server):
    """Give the workers a fresh, empty folder for their metric values."""
    folder = tempfile.mkdtemp(prefix="registry-metrics-")
    os.environ[METRICS_FOLDER_VARIABLE] = folder
    server.log.info("Metrics of all workers are kept in %s", folder)


def child_exit(server, worker):
    """Drop an exited worker's live values; its counters still count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder when gunicorn stops."""
    folder = os.environ.pop(METRICS_FOLDER_VARIABLE, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
