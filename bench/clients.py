"""The clients the benchmark drives the servers with.

Pushes go through ``http.client``, a file's bytes sent with sendfile(2) and
docker's streamed PATCH as 32 KiB chunks gathered from the mapped file by
sendmsg(2); blob downloads through curl writing to /dev/null; request rates
through wrk. None of them is the bottleneck of what it measures on loopback.
"""

import collections
import hashlib
import http.client
import itertools
import json
import mmap
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass

BLOCK_SIZE = 1024 * 1024
# docker's streamed PATCH arrives as Transfer-Encoding: chunked in pieces of this size.
STREAMED_PIECE = 32 * 1024
# Buffers given to each sendmsg(2): 32 framed chunks, 1 MiB of data. (Far
# more, up to IOV_MAX, cost more: the kernel takes the whole list in every
# call, and a socket's free buffer space takes a few MiB at most.)
BUFFERS_PER_SEND = 3 * 32
# Reopen a connection idle this long rather than find the server closed it
# (gunicorn.conf.py keeps idle connections for 5 seconds).
KEEPALIVE_SECONDS = 2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", re.MULTILINE)
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
# Each wrk connection walks the pages of a listing in turn, as a client would.
WRK_SCRIPT = """
local paths = {PATHS}
local next_page = 0
request = function()
  next_page = next_page % #paths + 1
  return wrk.format(nil, paths[next_page])
end
"""


@dataclass(frozen=True)
class FilePart:
    """A request body that is ``count`` bytes of an open file from ``offset``.

    It is sent with sendfile(2), as curl or Go's net/http send a file, so the
    client costs next to nothing and the figure is the server's.
    """

    file: object
    offset: int
    count: int


class FramedChunks:
    """A file sent with chunked Transfer-Encoding in pieces of STREAMED_PIECE.

    The chunks on the wire are those docker sends for a layer. The file is
    mapped into memory and each ``sendmsg`` gathers many framed chunks at
    once, the framing from a few constant strings and the data straight from
    the mapping: one copy of the data, into the socket, as for any send, and
    a system call for thousands of chunks, not one for each.
    """

    HEAD = b"%X\r\n" % STREAMED_PIECE

    def __init__(self, file):
        self.file = file

    def send(self, sock):
        """Send the whole framed body on ``sock``."""
        size = os.fstat(self.file.fileno()).st_size
        if not size:
            sock.sendall(b"0\r\n\r\n")
            return
        with mmap.mmap(self.file.fileno(), size, prot=mmap.PROT_READ) as mapped:
            data = memoryview(mapped)
            try:
                send_buffers(sock, self.buffers(data))
            finally:
                data.release()

    def buffers(self, data):
        """Each chunk's size line, data and CRLF, then the last chunk."""
        buffers = []
        for start in range(0, len(data), STREAMED_PIECE):
            piece = data[start : start + STREAMED_PIECE]
            head = self.HEAD if len(piece) == STREAMED_PIECE else b"%X\r\n" % len(piece)
            buffers += [head, piece, b"\r\n"]
        buffers.append(b"0\r\n\r\n")
        return buffers


def send_buffers(sock, buffers):
    """Send every buffer in turn, BUFFERS_PER_SEND of them for each ``sendmsg``."""
    pending = collections.deque(buffers)
    while pending:
        sent = sock.sendmsg(list(itertools.islice(pending, BUFFERS_PER_SEND)))
        while sent:
            first = pending[0]
            if sent < len(first):
                pending[0] = first[sent:]
                break
            sent -= len(first)
            pending.popleft()


class BenchError(Exception):
    """A server answered something the benchmark did not expect."""


def write_data(path, size, seed):
    """Write ``size`` bytes of incompressible data; return their sha256 digest.

    Each MiB is one random block with its index in front, so every MiB differs
    and the file is quick to make at any size.
    """
    block = bytearray(os.urandom(BLOCK_SIZE))
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        for index in range(0, size, BLOCK_SIZE):
            block[:16] = f"{seed:8x}{index // BLOCK_SIZE:8x}".encode()
            piece = bytes(block[: min(BLOCK_SIZE, size - index)])
            hasher.update(piece)
            out.write(piece)
    return "sha256:" + hasher.hexdigest()


class Client:
    """Talks to one registry, fetching Bearer tokens when the registry asks."""

    def __init__(self, server):
        self.server = server
        self.token = None
        self.connection = None
        self.last_used = 0.0

    def authorize(self, scopes):
        """Carry a token for ``scopes`` from now on (when the server wants one)."""
        self.token = None
        status, headers, _ = self.request("GET", "/v2/", expect=(200, 401))
        if status == 200:
            return
        challenge = headers.get("www-authenticate", "")
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = [("service", params.get("service", ""))]
        query += [("scope", scope) for scope in scopes]
        realm = urllib.parse.urlsplit(params["realm"])
        path = f"{realm.path}?{urllib.parse.urlencode(query)}"
        _, _, body = self.request("GET", path)
        self.token = json.loads(body)["token"]

    def auth_headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def connect(self):
        """The kept-alive connection, reopened when the server may have closed it."""
        idle = time.monotonic() - self.last_used
        if self.connection is None or idle > KEEPALIVE_SECONDS:
            self.close()
            host, _, port = self.server.host.partition(":")
            self.connection = http.client.HTTPConnection(
                host, int(port), timeout=600, blocksize=BLOCK_SIZE
            )
        return self.connection

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method, target, body=None, headers=None, expect=(200,)):
        """Send one request, as a client keeping its connection alive would."""
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.server.url, target))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {**self.auth_headers(), **(headers or {})}
        chunked = all_headers.get("Transfer-Encoding") == "chunked"
        if chunked and not isinstance(body, FramedChunks):
            del all_headers["Transfer-Encoding"]  # http.client frames the body
        else:
            chunked = False
        connection = self.connect()
        try:
            if isinstance(body, (FilePart, FramedChunks)):
                send_body(connection, method, path, all_headers, body)
            else:
                connection.request(method, path, body=body, headers=all_headers,
                                   encode_chunked=chunked)  # fmt: skip
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        self.last_used = time.monotonic()
        if response.will_close:
            self.close()
        if response.status not in expect:
            raise BenchError(f"{method} {path} -> {response.status}: {data[:300]!r}")
        found = {key.lower(): value for key, value in response.getheaders()}
        return response.status, found, data

    def start_upload(self, name):
        """POST a new upload; return its location."""
        _, headers, _ = self.request(
            "POST", f"/v2/{name}/blobs/uploads/", expect=(202,),
            headers={"Content-Length": "0"},
        )  # fmt: skip
        return headers["location"]

    def finish_upload(self, location, digest, body=b"", length=0):
        separator = "&" if "?" in location else "?"
        target = f"{location}{separator}digest={digest}"
        headers = {"Content-Length": str(length),
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        self.request("PUT", target, body, headers, expect=(201,))

    def push_monolithic(self, name, path, digest):
        """POST then one PUT carrying the whole blob."""
        location = self.start_upload(name)
        size = os.path.getsize(path)
        with open(path, "rb") as blob:
            self.finish_upload(location, digest, FilePart(blob, 0, size), size)

    def push_chunked(self, name, path, digest, chunk_size):
        """POST, PATCHes of ``chunk_size`` with Content-Range, then PUT."""
        location = self.start_upload(name)
        size = os.path.getsize(path)
        with open(path, "rb") as blob:
            for start in range(0, size, chunk_size):
                length = min(chunk_size, size - start)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{start + length - 1}",
                    "Content-Length": str(length),
                }
                chunk = FilePart(blob, start, length)
                _, found, _ = self.request("PATCH", location, chunk, headers,
                                           expect=(202,))  # fmt: skip
                location = found["location"]
        self.finish_upload(location, digest)

    def push_streamed(self, name, path, digest):
        """POST, one PATCH with a chunked body as docker sends it, then PUT."""
        location = self.start_upload(name)
        headers = {"Content-Type": "application/octet-stream",
                   "Transfer-Encoding": "chunked"}  # fmt: skip
        with open(path, "rb") as blob:
            _, found, _ = self.request("PATCH", location, FramedChunks(blob),
                                       headers, expect=(202,))  # fmt: skip
        self.finish_upload(found["location"], digest)

    def push_small_blob(self, name, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.finish_upload(self.start_upload(name), digest, data, len(data))
        return {"digest": digest, "size": len(data)}

    def mount_blob(self, name, digest, source):
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        self.request("POST", f"/v2/{name}/blobs/uploads/?{query}",
                     headers={"Content-Length": "0"}, expect=(201,))  # fmt: skip

    def put_manifest(self, name, reference, body):
        self.request("PUT", f"/v2/{name}/manifests/{reference}", body,
                     {"Content-Type": DOCKER_MANIFEST}, expect=(201,))  # fmt: skip

    def authorize_names(self, names, actions="pull,push"):
        """Carry one token for ``actions`` on every repository in names."""
        self.authorize([f"repository:{name}:{actions}" for name in names])


def send_body(connection, method, path, headers, body):
    """Send a request whose body is a FilePart (by sendfile) or FramedChunks."""
    connection.putrequest(method, path, skip_accept_encoding=True)
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    if isinstance(body, FramedChunks):
        body.send(connection.sock)
        return
    sent = connection.sock.sendfile(body.file, body.offset, body.count)
    if sent != body.count:
        raise BenchError(f"sent {sent} of {body.count} bytes of {method} {path}")


def small_image(client, name, seed):
    """Push a config and a layer into ``name``; return the manifest body."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed})
    layer = hashlib.sha512(f"layer {seed}".encode()).digest() * 16
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG,
                   **client.push_small_blob(name, config.encode())},
        "layers": [{"mediaType": DOCKER_LAYER,
                    **client.push_small_blob(name, layer)}],
    }  # fmt: skip
    return json.dumps(manifest, indent=3).encode()


def curl_download(urls, headers, size):
    """Fetch every url at once with curl to /dev/null; return the wall seconds."""
    curl = shutil.which("curl")
    if curl is None:
        raise BenchError("curl is not installed (apt-get install curl)")
    cmd = [curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
    cmd += ["--noproxy", "*"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    started = time.perf_counter()
    processes = [
        subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True) for url in urls
    ]
    outputs = [process.communicate()[0] for process in processes]
    seconds = time.perf_counter() - started
    for output in outputs:
        if output.split() != ["200", str(size)]:
            raise BenchError(f"curl got {output!r}, wanted 200 and {size} bytes")
    return seconds


def run_wrk(base, paths, headers, settings):
    """Run wrk cycling through ``paths``; return (requests per second, p99 ms)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed")
    connections = settings.connections
    threads = min(connections, os.cpu_count() or 1)
    cmd = [wrk, "-t", str(threads), "-c", str(connections)]
    cmd += ["-d", f"{settings.duration}s", "--latency"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.replace("PATHS", ", ".join(map(json.dumps, paths))))
        script.flush()
        cmd += ["-s", script.name, base + paths[0]]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    if "Non-2xx or 3xx responses" in done.stdout:
        raise BenchError(f"wrk saw error answers from {base}{paths}:\n{done.stdout}")
    rate, p99 = WRK_RATE.search(done.stdout), WRK_P99.search(done.stdout)
    if rate is None or p99 is None:
        raise BenchError(f"wrk output not understood:\n{done.stdout}")
    return float(rate[1]), float(p99[1]) * WRK_UNITS[p99[2]]
