"""gunicorn settings for the registry: ``gunicorn`` in this folder reads them.

Pass ``--bind HOST:PORT`` (or set GUNICORN_CMD_ARGS) to listen elsewhere.
"""

import multiprocessing

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
