"""The gunicorn settings the registry ships, and the worker's own small parts."""

import collections
import runpy
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors

import registry_worker

CONFIG_FILE = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


@pytest.fixture
def shipped_config():
    """gunicorn's Config with the shipped gunicorn.conf.py applied, as gunicorn does."""
    config = Config()
    for name, value in runpy.run_path(str(CONFIG_FILE)).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_shipped_config_sends_blobs_with_sendfile(shipped_config):
    assert shipped_config.sendfile is True


def test_shipped_config_runs_the_registry_worker(shipped_config):
    assert shipped_config.worker_class is registry_worker.RegistryWorker


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_timeout_that_is_not_a_positive_number_stops_the_worker(monkeypatch, value):
    monkeypatch.setenv(registry_worker.HEADER_TIMEOUT_VARIABLE, value)

    with pytest.raises(ValueError, match=registry_worker.HEADER_TIMEOUT_VARIABLE):
        registry_worker.timeout_from_environment(
            registry_worker.HEADER_TIMEOUT_VARIABLE, 10
        )


def test_timeout_from_the_environment_or_its_default(monkeypatch):
    name = registry_worker.BODY_TIMEOUT_VARIABLE
    monkeypatch.delenv(name, raising=False)
    assert registry_worker.timeout_from_environment(name, 7) == 7
    monkeypatch.setenv(name, "2.5")
    assert registry_worker.timeout_from_environment(name, 7) == 2.5


@pytest.mark.parametrize(
    "error,status,code",
    [
        (http_errors.InvalidHeader("CONTENT-LENGTH"), 400, "SIZE_INVALID"),
        (http_errors.InvalidChunkSize(b"zz"), 400, "SIZE_INVALID"),
        (http_errors.UnsupportedTransferCoding("gzip"), 501, "SIZE_INVALID"),
        (http_errors.LimitRequestLine(5000, 4094), 414, "UNSUPPORTED"),
        (http_errors.InvalidRequestLine("x"), 400, "UNSUPPORTED"),
        (RuntimeError("boom"), 500, "UNKNOWN"),
    ],
)
def test_refused_request_gets_its_oci_code(error, status, code):
    assert registry_worker.error_code(status, error) == code


class Kept:
    """What the worker looks at of a kept-alive connection whose head is in."""

    def __init__(self, head, sock, initialized=True, is_http2=False):
        self.head = head
        self.sock = sock
        self.initialized = initialized
        self.is_http2 = is_http2
        self.data_ready = False

    def receive_head(self):
        return True


MANIFEST_READ = b"GET /v2/a/b/manifests/v1 HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "head,read",
    [
        (MANIFEST_READ + b"\r\n", b"a/b/manifests"),
        (
            b"HEAD /v2/a/manifests/sha256:" + b"0" * 64 + b" HTTP/1.1\r\n\r\n",
            b"a/manifests",
        ),
        (b"GET /v2/a/tags/list HTTP/1.1\r\nAccept: */*\r\n\r\n", b"a/tags"),
        (b"GET /v2/a/tags/list?n=5&last=x HTTP/1.1\r\n\r\n", b"a/tags"),
        (b"GET /v2/a/manifests/v1?x=1 HTTP/1.1\r\n\r\n", b"a/manifests"),
        (b"GET /v2/a/manifests/v1#x HTTP/1.1\r\n\r\n", b"a/manifests"),
        (b"GET /v2/a/tags/list#x?n=1 HTTP/1.1\r\n\r\n", b"a/tags"),
        (b"GET /v2/%61/b/manifests/%76 HTTP/1.1\r\n\r\n", b"a/b/manifests"),
        # Only the head's fields count, not what is pipelined after it.
        (
            MANIFEST_READ + b"\r\nPUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 2",
            b"a/b/manifests",
        ),
    ],
)
def test_reads_of_a_kept_alive_connection_are_answered_inline(head, read):
    with socket.socket() as sock:
        assert registry_worker.inline_read(Kept(head, sock)) == read


@pytest.mark.parametrize(
    "head",
    [
        MANIFEST_READ,  # not whole yet
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"DELETE /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET /v2/a/blobs/sha256:00 HTTP/1.1\r\n\r\n",
        b"GET /v2/a/manifests/v1/x HTTP/1.1\r\n\r\n",
        b"GET /v2/_catalog HTTP/1.1\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.0\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\n\n",
        MANIFEST_READ + b"Content-Length: 3\r\n\r\n",
        MANIFEST_READ + b"transfer-encoding : chunked\r\n\r\n",
        MANIFEST_READ + b"Expect: 100-continue\r\n\r\n",
        MANIFEST_READ + b"Upgrade: h2c\r\n\r\n",
    ],
)
def test_other_requests_go_to_a_thread(head):
    with socket.socket() as sock:
        assert registry_worker.inline_read(Kept(head, sock)) is None


def test_new_and_tls_connections_go_to_a_thread():
    head = MANIFEST_READ + b"\r\n"
    with socket.socket() as sock:
        assert registry_worker.inline_read(Kept(head, sock, False)) is None
        assert registry_worker.inline_read(Kept(head, sock, True, True)) is None
    assert registry_worker.inline_read(Kept(head, object())) is None


class PollerOnly(registry_worker.RegistryWorker):
    """The worker's poller side alone; ``handle`` spends ``cost`` CPU seconds."""

    def __init__(self):
        self.poller = selectors.DefaultSelector()
        self.pending_conns = collections.deque()
        self.slow_reads = {}
        self.cost = 0.0
        self.inline, self.to_threads, self.finished = [], [], []

    def handle(self, conn):
        self.inline.append(conn.head)
        started = time.thread_time()
        while time.thread_time() - started < self.cost:
            pass
        return True

    def finish_request(self, conn, future):
        self.finished.append(future.result())

    def on_pending_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        self.to_threads.append(conn.head)

    def read(self, head):
        """Have the poller find ``head`` whole on a kept-alive connection."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            conn = Kept(head, ours)
            self.pending_conns.append(conn)
            self.poller.register(ours, selectors.EVENT_READ)
            self.on_head_readable(conn, ours)


def test_a_read_slow_to_answer_goes_to_threads_from_then_on(monkeypatch):
    monkeypatch.setattr(registry_worker, "SLOW_READS_KEPT", 2)
    worker = PollerOnly()
    slow = b"GET /v2/slow/tags/list HTTP/1.1\r\n\r\n"
    cheap = b"GET /v2/cheap/tags/list HTTP/1.1\r\n\r\n"
    worker.read(cheap)
    worker.cost = 3 * registry_worker.SLOW_INLINE_SECONDS
    worker.read(slow)
    worker.cost = 0.0
    varied = [  # what a client may vary does not count
        slow.replace(b"list", b"list?n=1"),
        slow.replace(b"list", b"list#1"),
        slow.replace(b"slow", b"%73low"),
    ]
    for head in varied:
        worker.read(head)
    worker.read(cheap)
    assert worker.inline == [cheap, slow, cheap]
    assert worker.to_threads == varied
    assert worker.finished == [True, True, True]

    worker.cost = 3 * registry_worker.SLOW_INLINE_SECONDS
    for name in (b"a", b"b"):  # two more slow paths: the first is forgotten
        worker.read(cheap.replace(b"cheap", name))
    worker.cost = 0.0
    worker.read(slow)
    assert worker.inline[-1] == slow
    assert list(worker.slow_reads) == [b"a/tags", b"b/tags"]


def test_sender_keeps_what_the_socket_does_not_take_and_sends_it_in_order():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        sender = registry_worker.NonBlockingSender(ours)
        sender.settimeout(30)  # kept, not applied: the socket never waits
        parts = [bytes([number]) * 200_000 for number in range(1, 4)]
        for part in parts:
            sender.sendall(part)

        assert ours.gettimeout() == 0.0
        assert sender.gettimeout() == 30
        assert sender.unsent  # far more than the buffers hold
        taken = sum(map(len, parts)) - sum(map(len, sender.unsent))
        received = []
        sending = threading.Thread(target=sender.send_rest, args=(30, True))
        sending.start()
        while sum(map(len, received)) < sum(map(len, parts)):
            received.append(theirs.recv(1 << 20))
        sending.join()
        assert b"".join(received) == b"".join(parts)
        assert taken > 0
