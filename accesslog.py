"""gunicorn's access log without the secrets a request may carry.

A client may send a token in the query string (``?access_token=...``) and
credentials in headers; gunicorn would write them into the request line, the
query and any header or environ atom the log format names. ``RedactingLogger``
(``logger_class`` in ``gunicorn.conf.py``) writes ``REDACTED`` in their place.

gunicorn loads this module in the arbiter, before ``on_starting`` points
prometheus_client at the workers' shared folder, so it stands beside
``wsgi.py`` and imports nothing of the ``app`` package: importing that would
load prometheus_client too early and leave every worker counting alone.
"""

import atexit
import base64
import binascii
import functools
import logging
import os
import queue
import re
import threading
import time
import traceback
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "REDACTED"
# Query parameters that carry a secret, compared in lower case.
SECRET_PARAMETERS = frozenset({"access_token", "token", "password", "refresh_token"})
# Headers that carry one, as gunicorn names their atoms: {name}i, {name}o, {name}e.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
SECRET_RESPONSE_HEADERS = frozenset({"set-cookie"})
# Atoms holding a whole request URI or query string.
QUERY_ATOMS = frozenset({"q", "{query_string}e"})
URI_ATOMS = frozenset({"{raw_uri}e", "{request_uri}e"})
# The referring page's address, which may hold credentials of its own.
REFERRER_ATOMS = frozenset({"f", "{referer}i", "{http_referer}e"})
# How a log format names an atom: %(name)s.
FORMAT_ATOM = re.compile(r"%\(([^)]*)\)")
# The user info of an absolute URI (``http://user:password@host/``).
USER_INFO = re.compile(r"^(\W*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)[^/?#@]*@")
QUERY_SEPARATOR = re.compile(r"([&;])")
WORD_SEPARATOR = re.compile(r"(\s+)")
# A credential header quoted in a message, up to the end of its value.
CREDENTIAL_TEXT = re.compile(
    r"\b(authorization|proxy-authorization|cookie|set-cookie)\s*:[^\r\n'\"]*",
    re.IGNORECASE,
)


class RedactingLogger(Logger):
    """gunicorn's logger, with secrets taken out of every access log atom.

    A request's thread only formats its line; one thread of each worker
    process writes them. Written by the request threads themselves, the lines
    queued up on the log handler's lock, each holder waiting for its write
    while the others woke and slept again: that cost a small request as much
    time as everything else it did.
    """

    def setup(self, cfg):
        super().setup(cfg)
        # Read once here (again on a reload), not through gunicorn's config
        # object twice for every request.
        self.log_format = cfg.access_log_format
        self.log_atoms = format_atoms(self.log_format)
        if not any(isinstance(f, RedactingFilter) for f in self.error_log.filters):
            self.error_log.addFilter(RedactingFilter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            atoms = self.atoms_wrapper_class(
                self.atoms(resp, req, environ, request_time)
            )
            line = self.log_format % atoms
        except Exception:
            self.error(traceback.format_exc())
            return
        self.access_writer().put(line)

    def access_writer(self):
        """Return this process's writer, started in the first request after a fork."""
        writer = getattr(self, "_access_writer", None)
        if writer is None or writer.pid != os.getpid():
            with WRITER_LOCK:
                writer = getattr(self, "_access_writer", None)
                if writer is None or writer.pid != os.getpid():
                    writer = self._access_writer = AccessWriter(self.access_log)
        return writer

    def atoms(self, resp, req, environ, request_time):
        """Return the atoms the log format names, with secrets redacted.

        gunicorn's own method builds every atom, one for each request header,
        response header and environ entry too, on every request; only those
        the format names are made here, the way gunicorn makes them.
        """
        atoms = {}
        for key in self.log_atoms:
            value = self.atom(key, resp, req, environ, request_time)
            if isinstance(value, str):
                value = redact_atom(key, value)
            if value is not None:
                atoms[key] = value
        return atoms

    def atom(self, key, resp, req, environ, request_time):
        """Return one atom's value, or None if the request has no such thing."""
        if key.startswith("{") and key[-2:] in ("}i", "}o", "}e"):
            name, kind = key[1:-2], key[-1]
            if kind == "e":
                pairs = environ.items()
            else:
                headers = req.headers if kind == "i" else resp.headers
                pairs = headers.items() if hasattr(headers, "items") else headers
            found = None
            for field, value in pairs:
                if field.lower() == name:
                    found = value  # the last of several, as gunicorn has it
            return found
        seconds, micros = request_time.seconds, request_time.microseconds
        sent = getattr(resp, "sent", None)
        if key == "h":
            return environ.get("REMOTE_ADDR", "-")
        if key == "l":
            return "-"
        if key == "u":
            return basic_user(environ.get("HTTP_AUTHORIZATION", "")) or "-"
        if key == "t":
            return self.now()
        if key == "r":
            if "RAW_URI" not in environ:
                return "-"  # refused before its request line was read
            uri = redact_uri(environ["RAW_URI"])
            return f"{environ['REQUEST_METHOD']} {uri} {environ['SERVER_PROTOCOL']}"
        if key == "s":
            status = resp.status
            return status.split(None, 1)[0] if isinstance(status, str) else status
        if key == "b":
            return str(sent) if sent is not None else "-"
        if key == "B":
            return sent
        if key == "T":
            return seconds
        if key == "D":
            return seconds * 1000000 + micros
        if key == "M":
            return seconds * 1000 + micros // 1000
        if key == "L":
            return f"{seconds}.{micros:06d}"
        if key == "p":
            return f"<{os.getpid()}>"
        variable = ENVIRON_ATOMS.get(key)
        if variable is None:
            return None
        return environ.get(variable, "-" if key in ("f", "a") else None)


# The atoms that are one environ entry each.
ENVIRON_ATOMS = {
    "m": "REQUEST_METHOD",
    "U": "PATH_INFO",
    "q": "QUERY_STRING",
    "H": "SERVER_PROTOCOL",
    "f": "HTTP_REFERER",
    "a": "HTTP_USER_AGENT",
}


# Taken while a process's writer is made, so that two threads make only one.
WRITER_LOCK = threading.Lock()


class AccessWriter:
    """Writes the access log lines of one process, from a thread of its own.

    After writing what it found, the thread waits a moment before it looks
    again: lines put meanwhile wake nobody, and under load one wake-up
    writes many lines instead of each request waking the thread for its own.
    The lines left when the process exits are written before it ends.
    """

    def __init__(self, log):
        self.log = log
        self.pid = os.getpid()
        self.lines = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self.write_lines, name="access-log", daemon=True
        )
        self.thread.start()
        atexit.register(self.close)

    def put(self, line):
        self.lines.put(line)

    def write_lines(self):
        line = self.lines.get()
        while line is not None:
            try:
                self.log.info(line)
            except Exception:
                traceback.print_exc()
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                time.sleep(WRITER_PAUSE_SECONDS)
                line = self.lines.get()

    def close(self):
        """Write what is queued, then stop the thread."""
        if self.pid == os.getpid() and self.thread.is_alive():
            self.lines.put(None)
            self.thread.join(timeout=WRITER_CLOSE_SECONDS)


# How long an exiting process waits for its last access log lines to be written.
WRITER_CLOSE_SECONDS = 5
# How long the writer waits, once it has written all it found, before it looks
# again: the most a line waits in a busy server.
WRITER_PAUSE_SECONDS = 0.02


@functools.lru_cache(maxsize=8)
def format_atoms(log_format):
    """Return the atoms a log format names, as gunicorn looks them up."""
    return frozenset(
        key.lower() if key.startswith("{") else key
        for key in FORMAT_ATOM.findall(log_format)
    )


def redact_atom(key, value):
    """Return one atom's value with whatever secret it holds redacted."""
    if key in QUERY_ATOMS:
        return redact_query(value)
    if key in URI_ATOMS or key in REFERRER_ATOMS:
        return redact_uri(value)
    return REDACTED if is_secret_header(key) else value


def is_secret_header(key):
    """Tell whether an atom names a request or response header carrying a secret."""
    if not key.startswith("{") or key[-2:] not in ("}i", "}o", "}e"):
        return False
    name, kind = key[1:-2], key[-1]
    if kind == "o":
        return name in SECRET_RESPONSE_HEADERS
    if kind == "e":
        if not name.startswith("http_"):
            return False
        name = name.removeprefix("http_").replace("_", "-")
    return name in SECRET_HEADERS


def redact_uri(uri):
    """Return a URI with its user info, secret query values and fragment redacted.

    A fragment is never sent by a client that follows HTTP; one that is sent
    is kept out of the log whole.
    """
    uri = USER_INFO.sub(rf"\1{REDACTED}@", uri)
    path, separator, query = uri.partition("?")
    query, mark, fragment = query.partition("#")
    if not separator:
        path, mark, fragment = path.partition("#")
    fragment = REDACTED if fragment else ""
    return path + separator + redact_query(query) + mark + fragment


def basic_user(authorization):
    """Return the user name a Basic ``Authorization`` value carries, or None.

    Only a name followed by ``:`` and a password is one: a value without the
    colon may be a bare token or password, and is not logged. A name holding
    a line break or another control character would forge log lines: None.
    """
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, _password = decoded.partition(":")
    return user if colon and user.isprintable() else None


def redact_query(query):
    """Return a query string with the values of secret parameters redacted.

    Parameters are told apart by ``&`` and by ``;``, as some parsers do.
    """
    parts = QUERY_SEPARATOR.split(query)
    for index in range(0, len(parts), 2):
        name, _, _ = parts[index].partition("=")
        if unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            parts[index] = f"{name}={REDACTED}"
    return "".join(parts)


def redact_text(text):
    """Return a log message with what may be secret in it redacted.

    gunicorn's own warnings quote the request line or header they refuse:
    every word that looks like a URI, and every credential header, is redacted.
    """
    words = WORD_SEPARATOR.split(text)
    for index in range(0, len(words), 2):
        if any(mark in words[index] for mark in "?@#"):
            words[index] = redact_uri(words[index])
    return CREDENTIAL_TEXT.sub(rf"\1: {REDACTED}", "".join(words))


class RedactingFilter(logging.Filter):
    """Redacts each record of gunicorn's error log with ``redact_text``."""

    def filter(self, record):
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
