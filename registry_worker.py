"""The gunicorn worker the registry runs in: gthread, made safe from slow clients.

gunicorn's threaded worker reads each request's head in a pool thread from a
blocking socket, so a client that sends half a request line and stalls holds
that thread for good, and a few of them freeze the worker. ``RegistryWorker``
changes four things and leaves the rest (keep-alive, ``--max-requests``,
graceful restarts, TLS, sendfile, the server hooks) to gunicorn:

- a connection waits in the worker's poller, taking no thread, until the head
  of its next request (request line and headers) is in: the poller shakes
  hands (TLS) and gathers the head itself, so a half-sent head costs a
  socket, not a thread;
- the head must arrive within the header timeout, counted from the accept or,
  on a kept-alive connection, from the request's first byte; late, it is
  answered 408 and the connection closed;
- the body and the response get an idle timeout instead: a read or write that
  makes no progress for that long fails, one that moves on may go on for hours;
- on a kept-alive connection, a manifest or tag list read is answered by the
  poller's thread itself, sparing the hand-off to a pool thread and back
  (most of a small request's cost); the poller never waits to send, leaving
  what a slow reader does not take to a pool thread.

Bytes a response sends with sendfile(2) (blob downloads) are counted for the
access log, as gunicorn counts those it writes itself.

Requests gunicorn refuses before the application sees them (a head too large,
two Content-Length headers, bare LF line ends, ...) are answered in the OCI
error format with the status gunicorn chose.

Both timeouts are read from the environment, in seconds:
``REGISTRY_HEADER_TIMEOUT`` and ``REGISTRY_BODY_TIMEOUT``.

This module stands beside ``wsgi.py``, outside the ``app`` package: gunicorn
imports the worker class in the arbiter before its ``on_starting`` hook runs,
and importing ``app`` there would load prometheus_client before the metrics
folder it must see is set.
"""

import contextlib
import datetime
import json
import os
import re
import selectors
import socket
import ssl
import time
import urllib.parse
from functools import partial

from gunicorn import http, util
from gunicorn import sock as gunicorn_sock
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from accesslog import redact_text

HEADER_TIMEOUT_VARIABLE = "REGISTRY_HEADER_TIMEOUT"
BODY_TIMEOUT_VARIABLE = "REGISTRY_BODY_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 120.0
# The poller reads a head in pieces of this size, and leaves heads longer than
# this to the thread (which reads the rest against the deadline, and refuses
# heads over gunicorn's limits).
HEAD_READ_SIZE = 64 * 1024
HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
# Bytes no HTTP/1 request line holds: a client that sends them (a TLS
# ClientHello on the plain port, as docker sends first to a registry it may
# reach either way) is answered now, not once the header timeout is over.
NOT_HTTP = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Requests a kept-alive connection has answered by the poller's own thread,
# without the two hand-offs to a pool thread and back: the reads clients make
# most (manifests and tag lists), when they carry no body and nothing that
# would make the server wait for the client (a 100-continue, an upgrade).
INLINE_REQUEST = re.compile(
    rb"(?:GET|HEAD) /v2/([^ ?#]+)/(?:(manifests)/[^ /?#]+|(tags)/list)"
    rb"(?:[?#][^ ]*)? HTTP/1\.1\r\n"
)
NOT_INLINE_FIELD = re.compile(
    rb"\r\n(?:content-length|transfer-encoding|expect|upgrade|http2-settings)"
    rb"[ \t]*:",
    re.IGNORECASE,
)
# A repository whose manifest or tag list took the poller's thread this much
# CPU time to answer (a tag list of many thousands, a manifest of megabytes)
# has those reads answered by pool threads from then on: the poller's time is
# every other connection's wait. The repository counts, not the reference,
# query or fragment, which a client may vary at will. The worker remembers
# this many such reads, the latest.
SLOW_INLINE_SECONDS = 0.002
SLOW_READS_KEPT = 1024

# Errors in how a body's length is framed: the OCI code for a body whose length
# does not hold is SIZE_INVALID.
FRAMING_HEADERS = frozenset({"CONTENT-LENGTH", "TRANSFER-ENCODING"})
FRAMING_ERRORS = (
    http_errors.UnsupportedTransferCoding,
    http_errors.InvalidChunkSize,
    http_errors.ChunkMissingTerminator,
    http_errors.InvalidChunkExtension,
)


def timeout_from_environment(variable, default):
    """Return the positive number of seconds ``variable`` holds, or ``default``."""
    value = os.environ.get(variable)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{variable} is not a number of seconds: {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"{variable} must be more than 0 seconds: {value!r}")
    return seconds


class HeadTimeout(Exception):
    """The request head did not arrive within the header timeout."""

    def __str__(self):
        return "request head not received in time"


class NotHTTP(Exception):
    """What arrived cannot be the head of an HTTP/1 request."""

    def __str__(self):
        return "the request is not HTTP/1"


class HeadDeadlineUnreader(SocketUnreader):
    """A socket reader that, while ``deadline`` is set, never waits past it."""

    deadline = None

    def chunk(self, size_hint=None):
        if self.deadline is None:
            return super().chunk(size_hint)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise HeadTimeout()
        self.sock.settimeout(remaining)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            raise HeadTimeout() from None


class RegistryConnection(TConn):
    """A client connection whose every request head has a deadline."""

    def __init__(self, cfg, sock, client, server, header_timeout):
        super().__init__(cfg, sock, client, server)
        self.header_timeout = header_timeout
        # What the poller has read of the next request's head, and by when
        # the rest must be in.
        self.head = b""
        self.head_deadline = None

    def receive_head(self):
        """Take what has arrived without waiting; return True once the head is in.

        A closed connection counts as done too: the thread then meets its end.
        Raises BlockingIOError, or SSLWantReadError under TLS, to wait for more.
        """
        if self.cfg.is_ssl:
            self.shake_hands()
        data = self.sock.recv(HEAD_READ_SIZE)
        self.head += data
        # Only the request line is looked at: a body may follow the head at once.
        if NOT_HTTP.search(self.head.split(b"\n", 1)[0]):
            raise NotHTTP()
        if not data or len(self.head) >= HEAD_READ_SIZE:
            return True
        return any(end in self.head for end in HEAD_ENDS)

    def shake_hands(self):
        """Carry the TLS handshake on as far as what has arrived allows.

        Raises SSLWantReadError until it is done. (The server's flight is a few
        kilobytes, far below a socket's send buffer, so a want for writing is
        waited out as a want for reading.)
        """
        if not isinstance(self.sock, ssl.SSLSocket):
            context = gunicorn_sock.ssl_context(self.cfg)
            self.sock = context.wrap_socket(
                self.sock,
                server_side=True,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                do_handshake_on_connect=False,
            )
        if self.sock.version() is None:
            self.sock.do_handshake()

    def init(self):
        """Set up the connection once; start the head deadline of each request."""
        if not self.initialized:
            self.start_connection()
        unreader = getattr(self.parser, "unreader", None)
        if isinstance(unreader, HeadDeadlineUnreader):
            unreader.unread(unreader.take_buffered() + self.head)
            unreader.deadline = self.head_deadline or self.next_deadline()
            self.head, self.head_deadline = b"", None

    def next_deadline(self):
        """Return by when a request head starting now must be in."""
        return time.monotonic() + self.header_timeout

    def start_connection(self):
        """Make the connection's parser, one that reads heads against a deadline."""
        self.sock.settimeout(self.header_timeout)
        if isinstance(self.sock, ssl.SSLSocket):
            self.start_tls_parser()
        else:
            super().init()
        unreader = getattr(self.parser, "unreader", None)
        if type(unreader) is not SocketUnreader:
            self.sock.settimeout(None)  # HTTP/2: gunicorn's own handling
            return
        replacement = HeadDeadlineUnreader(self.sock)
        replacement.unread(unreader.take_buffered())
        self.parser.unreader = replacement

    def start_tls_parser(self):
        """Make the parser of a connection the poller has shaken hands with."""
        self.initialized = True
        if gunicorn_sock.is_http2_negotiated(self.sock):
            self.is_http2 = True
            self.parser = http.get_parser(
                self.cfg, self.sock, self.client, http2_connection=True
            )
            self.parser.initiate_connection()
        else:
            self.parser = http.get_parser(self.cfg, self.sock, self.client)

    def start_body(self, body_timeout):
        """The head is in: from now on only an idle socket times out."""
        self.parser.unreader.deadline = None
        self.sock.settimeout(body_timeout)


class RegistryWorker(ThreadWorker):
    """gunicorn's gthread worker with deadlines for slow clients and OCI errors."""

    def init_process(self):
        wsgi.Response = SendfileCountingResponse  # this worker process only
        self.header_timeout = timeout_from_environment(
            HEADER_TIMEOUT_VARIABLE, DEFAULT_HEADER_TIMEOUT
        )
        self.body_timeout = timeout_from_environment(
            BODY_TIMEOUT_VARIABLE, DEFAULT_BODY_TIMEOUT
        )
        self.slow_reads = {}  # in the order they were found slow
        super().init_process()

    def accept(self, listener):
        """Accept a connection and let it wait for its request head in the poller."""
        try:
            client_sock, client_addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        self.nr_conns += 1
        conn = RegistryConnection(
            self.cfg, client_sock, client_addr, listener.getsockname(),
            self.header_timeout,
        )  # fmt: skip
        self.wait_for_head(conn)

    def wait_for_head(self, conn, registered=False):
        """Park ``conn`` in the poller until its head is in, or its time is up.

        A socket ``registered`` already (a kept-alive one) has its callback
        swapped in place.
        """
        conn.timeout = conn.head_deadline = conn.next_deadline()
        self.pending_conns.append(conn)
        callback = partial(self.on_head_readable, conn)
        park = self.poller.modify if registered else self.poller.register
        park(conn.sock, selectors.EVENT_READ, callback)

    def on_head_readable(self, conn, client):
        """Gather the head as it arrives; hand the connection on once it is in."""
        try:
            complete = conn.receive_head()
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except ssl.SSLError as error:
            self.log.debug("TLS handshake failed: %s", error)
            self.close_pending(conn, client)
            return
        except NotHTTP as error:
            self.log.debug("Not an HTTP request from ip=%s", conn.client[0])
            self.send_error(conn.sock, 400, "Bad Request", error, conn.client)
            self.close_pending(conn, client)
            return
        except OSError:
            complete = True  # the thread meets the error and closes
        if complete:
            read = inline_read(conn)
            if read is not None and read not in self.slow_reads:
                self.answer_inline(conn, client, read)
            else:
                self.on_pending_socket_readable(conn, client)

    def answer_inline(self, conn, client, read):
        """Serve a kept-alive connection's request in this thread, the poller's.

        The answer is sent as far as the socket takes it at once; whatever is
        left goes to a pool thread, which sends it under the body timeout
        before the connection returns to the poller. A client that does not
        read its answers holds a pool thread, as any slow client does, and
        never the poller. A ``read`` (see inline_read) whose answer took the
        poller long goes to pool threads from then on.
        """
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        conn.data_ready = True
        sock = conn.sock
        if sock.gettimeout() != 0.0:  # a kept-alive socket is non-blocking already
            sock.setblocking(False)
        sender = conn.sock = NonBlockingSender(sock)
        started = time.thread_time()
        try:
            result = self.handle(conn)
        finally:
            conn.sock = sock
        if time.thread_time() - started > SLOW_INLINE_SECONDS:
            self.remember_slow(read)
        if not sender.unsent:
            self.finish_request(conn, Finished(result))
            return
        future = self.tpool.submit(self.send_rest, sender, conn, result)
        future.add_done_callback(
            lambda done: self.method_queue.defer(self.finish_request, conn, done)
        )

    def remember_slow(self, read):
        """Have pool threads answer ``read`` from now on; forget the oldest."""
        self.slow_reads[read] = None
        if len(self.slow_reads) > SLOW_READS_KEPT:
            del self.slow_reads[next(iter(self.slow_reads))]

    def close_pending(self, conn, client):
        """Close a connection that is waiting for its head."""
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        self.nr_conns -= 1
        conn.close()

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request begins: gather its head.

        The socket stays in the poller, now waiting for the rest of the head,
        and what has arrived is read at once: most heads come whole, and then
        the request goes to a thread without another turn of the poller.
        """
        if not isinstance(conn, RegistryConnection):
            super().on_client_socket_readable(conn, client)
            return
        self.keepalived_conns.remove(conn)
        self.wait_for_head(conn, registered=True)
        self.on_head_readable(conn, client)

    def murder_pending(self):
        """Close connections whose head is late, answering 408 to those that began."""
        now = time.monotonic()
        while self.pending_conns and self.pending_conns[0].timeout <= now:
            conn = self.pending_conns.popleft()
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            if getattr(conn, "head", b""):
                self.log.warning("Slow request head from ip=%s", conn.client[0])
                self.send_error(
                    conn.sock, 408, "Request Timeout", HeadTimeout(), conn.client
                )
            self.nr_conns -= 1
            conn.close()

    def handle_request(self, req, conn):
        """Serve a request whose head has arrived, under the body's idle timeout."""
        if isinstance(conn, RegistryConnection):
            conn.start_body(self.body_timeout)
        try:
            return super().handle_request(req, conn)
        except TimeoutError:
            self.log_stalled(conn)
            return False  # the answer is cut short: the connection closes

    def send_rest(self, sender, conn, result):
        """Send what the poller could not; close the connection if that stalls."""
        try:
            return sender.send_rest(self.body_timeout, result)
        except TimeoutError:
            self.log_stalled(conn)
            return False

    def log_stalled(self, conn):
        """One line, no traceback, for a client idle past the body timeout."""
        self.log.warning(
            "Client ip=%s stalled for %g s: connection closed",
            conn.client[0] if conn.client else "-",
            self.body_timeout,
        )

    def handle_error(self, req, client, addr, exc):
        """Answer an error gunicorn met outside the application in OCI JSON."""
        if isinstance(exc, HeadTimeout):
            self.log.warning("Slow request head from ip=%s", (addr or ("",))[0])
            status, reason = 408, "Request Timeout"
        else:
            # gunicorn logs the error and picks the status; only its page is
            # replaced.
            recorder = ResponseRecorder()
            super().handle_error(req, recorder, addr, exc)
            status, reason = recorder.status()
            if req is not None:
                addr = None  # gunicorn has given the request its access log line
        self.send_error(client, status, reason, exc, addr)

    def send_error(self, client, status, reason, exc, addr=None):
        """Send an OCI error response on a connection about to be closed.

        With the client's ``addr``, the refusal gets an access log line: the
        request was not read far enough to have one of its own.
        """
        response = error_response(status, reason, exc)
        try:
            util.write_nonblock(client, response)
        except Exception:
            self.log.debug("Failed to send error message.")
        if addr is not None:
            self.log_refused(addr, f"{status} {reason}", len(response))

    def log_refused(self, addr, status, length):
        """Write the access log line of a request refused before it was read."""
        environ = {"REMOTE_ADDR": str(addr[0]) if addr else "-"}
        try:
            self.log.access(Refused(status, length), Refused(), environ, ZERO_TIME)
        except Exception:
            self.log.debug("Failed to log a refused request.")


ZERO_TIME = datetime.timedelta(0)


def inline_read(conn):
    """Return what the request ``conn`` holds reads, if the poller may answer it.

    That is the repository's name, percent-decoded, and ``manifests`` or
    ``tags``: ``b"library/ubuntu/manifests"``.

    Only a kept-alive plain HTTP/1.1 connection qualifies (its parser and
    socket are set up already), with a whole head that matches
    INLINE_REQUEST and has no field NOT_INLINE_FIELD names. Else None.
    """
    if not conn.initialized or conn.is_http2 or type(conn.sock) is not socket.socket:
        return None
    end = conn.head.find(b"\r\n\r\n")
    found = INLINE_REQUEST.match(conn.head) if end >= 0 else None
    if found is None or NOT_INLINE_FIELD.search(conn.head, 0, end + 2):
        return None
    name = urllib.parse.unquote_to_bytes(found[1])
    return b"%s/%s" % (name, found[2] or found[3])


class NonBlockingSender:
    """Stands in for a socket while the poller's thread answers on it.

    Every send takes what the socket takes without waiting and keeps the
    rest, in order, for ``send_rest``. The timeouts the request's handling
    sets are kept here, not on the socket, which stays non-blocking. Anything
    else is the socket's own.
    """

    def __init__(self, sock):
        self.sock = sock
        self.unsent = []
        self.timeout = 0.0

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def gettimeout(self):
        return self.timeout

    def settimeout(self, timeout):
        self.timeout = timeout

    def setblocking(self, flag):
        self.timeout = None if flag else 0.0

    def sendall(self, data):
        view = memoryview(data).cast("B")
        if not self.unsent:
            with contextlib.suppress(BlockingIOError):
                while view:
                    view = view[self.sock.send(view) :]
        if view:
            self.unsent.append(bytes(view))

    def send(self, data):
        self.sendall(data)
        return len(data)

    def sendfile(self, file, offset=0, count=None):
        # The requests answered inline send bytes from memory; should a file
        # come, it is sent as bytes too.
        file.seek(offset)
        self.sendall(file.read(count))

    def send_rest(self, timeout, result):
        """Send what the socket did not take, waiting as any request waits."""
        self.sock.settimeout(timeout)
        for data in self.unsent:
            self.sock.sendall(data)
        return result


class Finished:
    """The outcome of a request served without a pool thread, as a future has it."""

    def __init__(self, result):
        self.value = result

    def cancelled(self):
        return False

    def result(self):
        return self.value


class SendfileCountingResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, counting what it sends with sendfile too.

    A file sent whole is what gunicorn chose to send: Content-Length bytes, or
    the rest of the file. One cut short by the client leaves the file where
    socket.sendfile stopped, so the distance it moved is what was sent.
    """

    def sendfile(self, respiter):
        filelike = respiter.filelike
        try:
            start = filelike.tell()
        except (AttributeError, OSError, ValueError):
            return super().sendfile(respiter)
        try:
            done = super().sendfile(respiter)
        except BaseException:
            with contextlib.suppress(OSError, ValueError):
                self.sent += max(filelike.tell() - start, 0)
            raise
        if done and not getattr(self, "_omits_body", False):
            length = self.response_length
            if length is None:
                length = os.fstat(filelike.fileno()).st_size - start
            self.sent += max(length, 0)
        return done


class Refused:
    """What the access log needs of a refused request, and of its answer."""

    def __init__(self, status="-", sent=None):
        self.status = status
        self.sent = sent
        self.headers = []


class ResponseRecorder:
    """Stands in for the client socket to keep what gunicorn would have sent."""

    def __init__(self):
        self.sent = b""

    def gettimeout(self):
        return 0.0

    def sendall(self, data):
        self.sent += data

    def status(self):
        """Return the status code and reason of the recorded response."""
        status_line = self.sent.split(b"\r\n", 1)[0].decode("latin-1")
        _version, code, reason = (status_line.split(" ", 2) + ["", ""])[:3]
        if not code.isdigit():
            return 500, "Internal Server Error"
        return int(code), reason


def error_code(status, exc):
    """Return the OCI error code for a request gunicorn refused with ``status``."""
    if status >= 500 and not isinstance(exc, http_errors.UnsupportedTransferCoding):
        return "UNKNOWN"
    if isinstance(exc, FRAMING_ERRORS):
        return "SIZE_INVALID"
    if getattr(exc, "hdr", None) in FRAMING_HEADERS:
        return "SIZE_INVALID"
    # The spec's code for a request with an invalid set of parameters.
    return "UNSUPPORTED"


def error_response(status, reason, exc):
    """Return the bytes of a whole HTTP response with an OCI error body."""
    error = {
        "code": error_code(status, exc),
        "message": reason.lower(),
        "detail": {
            "reason": redact_text(str(exc)) if status < 500 else "internal server error"
        },
    }
    body = json.dumps({"errors": [error]}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
