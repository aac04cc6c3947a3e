"""Blob pushes and downloads through the real gunicorn: sendfile, ranges, bodies."""

import hashlib
import http.client
import json
import os
import secrets
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import DIRECT

NAME = "transfers/blob"
BLOB = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a little


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def send(server, method, path, body=None, headers=None, token=None):
    """Send a request to the server; return (status, headers, body)."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else server.url + path
    request = urllib.request.Request(url, body, headers, method=method)
    with DIRECT.open(request, timeout=60) as response:
        return response.status, response.headers, response.read()


@pytest.fixture(scope="module")
def token(registry_server):
    path = f"/token?service=registry&scope=repository:{NAME}:pull,push"
    return json.loads(send(registry_server, "GET", path)[2])["token"]


@pytest.fixture(scope="module")
def pushed(registry_server, token):
    """The blob, pushed with a streamed (chunked Transfer-Encoding) PATCH."""
    _, headers, _ = send(registry_server, "POST", f"/v2/{NAME}/blobs/uploads/",
                         b"", token=token)  # fmt: skip
    pieces = (BLOB[i : i + 32768] for i in range(0, len(BLOB), 32768))
    _, headers, _ = send(registry_server, "PATCH", headers["Location"], pieces,
                         {"Transfer-Encoding": "chunked"}, token)  # fmt: skip
    location = f"{headers['Location']}?digest={digest_of(BLOB)}"
    status, _, _ = send(registry_server, "PUT", location, b"", token=token)
    assert status == 201
    return digest_of(BLOB)


def test_a_streamed_push_is_served_whole(registry_server, token, pushed):
    status, _, body = send(registry_server, "GET", f"/v2/{NAME}/blobs/{pushed}",
                           token=token)  # fmt: skip
    assert status == 200 and body == BLOB


@pytest.mark.parametrize(
    "header, start, stop",
    [("bytes=0-0", 0, 1), ("bytes=1000-70000", 1000, 70001), ("bytes=-4", -4, None)],
)
def test_a_range_is_served_exactly(registry_server, token, pushed, header, start, stop):
    status, headers, body = send(registry_server, "GET",
                                 f"/v2/{NAME}/blobs/{pushed}",
                                 headers={"Range": header}, token=token)  # fmt: skip
    assert status == 206 and body == BLOB[start:stop]
    assert int(headers["Content-Length"]) == len(body)


def test_ranges_on_one_kept_alive_connection_stay_apart(registry_server, token, pushed):
    connection = http.client.HTTPConnection(
        "127.0.0.1", registry_server.port, timeout=60
    )
    bodies = []
    try:
        for header in ("bytes=10-19", "bytes=20-29"):
            connection.request(
                "GET",
                f"/v2/{NAME}/blobs/{pushed}",
                headers={"Range": header, "Authorization": f"Bearer {token}"},
            )
            bodies.append(connection.getresponse().read())
    finally:
        connection.close()
    assert bodies == [BLOB[10:20], BLOB[20:30]]


def logged_size(server, marker):
    """The size the access log gives the request whose line holds ``marker``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log.read_text().splitlines():
            if marker in line:
                return line.split('" ', 1)[1].split()[1]
        time.sleep(0.05)  # lines are written by a thread, a moment later
    raise AssertionError(f"no access log line holds {marker}")


@pytest.mark.parametrize(
    "method, header, size",
    [
        ("GET", None, len(BLOB)),
        ("GET", "bytes=1000-70000", 69001),
        ("GET", "bytes=-4", 4),
        ("HEAD", None, 0),
    ],
)
def test_the_access_log_counts_the_bytes_of_a_download(
    registry_server, token, pushed, method, header, size
):
    marker = f"sent={secrets.token_hex(8)}"
    headers = {"Range": header} if header else {}
    path = f"/v2/{NAME}/blobs/{pushed}?{marker}"
    status, _, body = send(registry_server, method, path, headers=headers, token=token)
    assert status in (200, 206) and len(body) == size
    assert logged_size(registry_server, marker) == str(size)


def blob_file(server, digest):
    hex_digits = digest.split(":")[1]
    return server.storage_root / "blobs" / "sha256" / hex_digits[:2] / hex_digits


@pytest.fixture(params=["link to another blob", "link out of the root", "fifo"])
def planted(request, registry_server, token, pushed, tmp_path):
    """A small blob of NAME with something else put in its file's place."""
    small = b"a blob whose file is replaced"
    digest = digest_of(small)
    send(registry_server, "POST", f"/v2/{NAME}/blobs/uploads/?digest={digest}",
         small, {"Content-Type": "application/octet-stream"}, token)  # fmt: skip
    path = blob_file(registry_server, digest)
    aside = tmp_path / "aside"
    os.rename(path, aside)
    if request.param == "fifo":
        os.mkfifo(path)
    elif request.param == "link out of the root":
        (tmp_path / "outside").write_bytes(BLOB)
        os.symlink(tmp_path / "outside", path)
    else:
        target = blob_file(registry_server, pushed)
        os.symlink(os.path.relpath(target, path.parent), path)
    yield digest
    os.unlink(path)
    os.rename(aside, path)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("reading", ["whole", "range"])
def test_what_stands_in_a_blobs_place_is_not_served(
    registry_server, token, planted, method, reading
):
    headers = {"Range": "bytes=0-99"} if reading == "range" else {}
    with pytest.raises(urllib.error.HTTPError) as refused:
        send(registry_server, method, f"/v2/{NAME}/blobs/{planted}",
             headers=headers, token=token)  # fmt: skip
    with refused.value as response:
        body = response.read()
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/json"
    if method == "GET":
        assert [error["code"] for error in json.loads(body)["errors"]] == [
            "BLOB_UNKNOWN"
        ]
    else:
        assert body == b""
