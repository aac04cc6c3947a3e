"""gunicorn's access log keeps no token, password or credential header, and
loses no line when the server stops right after a burst of requests."""

import base64
import os
import socket
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Server, free_port, serving

SECRET = "s3cr3t-value-never-logged"
# gunicorn's default line plus the header and environ atoms that carry secrets.
LOG_FORMAT = (
    '%(h)s "%(r)s" %(s)s q=%(q)s auth=%({authorization}i)s '
    "cookie=%({cookie}i)s env=%({http_authorization}e)s uri=%({raw_uri}e)s "
    "ref=%(f)s"
)
SECRET_QUERIES = [
    f"/v2/?access_token={SECRET}",
    f"/token?service=registry&token={SECRET}&scope=repository:a:pull",
    f"/token?password={SECRET}",
    f"/token?REFRESH_TOKEN={SECRET}",
    f"/token?access%5Ftoken={SECRET}",
]
# Requests gunicorn refuses or takes apart itself, each quoting the secret.
RAW_REQUESTS = [
    f"GET /token?password={SECRET}&x=\u00e9 HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET /token?scope=a;password={SECRET} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET http://alice:{SECRET}@127.0.0.1/v2/ HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET //alice:{SECRET}@127.0.0.1/v2/ HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET /v2/?x=1#password={SECRET} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET /v2/#{SECRET} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
    f"GET /v2/ HTTP/1.1\r\nReferer: http://h/p#{SECRET}\r\n\r\n".encode(),
    b"GET /v2/ HTTP/1.1\r\nAuthorization: Basic "
    + base64.b64encode(SECRET.encode())  # a bare token: no user name in it
    + b"\r\n\r\n",
    f"GET /v2/ HTTP/1.1\r\nReferer: http://u:{SECRET}@h/?token={SECRET}\r\n\r\n".encode(),
    f"GET /v2/ HTTP/1.1\r\nAuthorization: Basic {SECRET}\x01\r\n\r\n".encode(),
]
# Requests refused before gunicorn could read a request line out of them.
UNREADABLE_REQUESTS = [
    b"FOO BAR\r\n\r\n",
    b"GET /v2/\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /v2/ HTTP/9.9\r\nHost: h\r\n\r\n",
]
# Requests sent at once from many threads just before the server is stopped.
BURST = 300


@pytest.fixture(scope="module")
def access_log(tmp_path_factory):
    """Serve, send requests carrying SECRET, stop, and return the log's text."""
    tmp = tmp_path_factory.mktemp("access-log")
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_HTPASSWD_FILE": str(tmp / "htpasswd"),
        "REGISTRY_LOGIN_FAILURES_FILE": str(tmp / "login-failures.sqlite"),
    }
    server = Server(free_port(), tmp / "storage", env)
    credentials = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Cookie": f"session={SECRET}"}
    flags = ("--bind", server.host, "--access-logformat", LOG_FORMAT)
    with serving(server, tmp, *flags):
        for path in SECRET_QUERIES:
            send(server, path, headers)
        send(server, "/v2/?visible=kept", {})
        for request in RAW_REQUESTS + UNREADABLE_REQUESTS:
            send_raw(server, request)
        with ThreadPoolExecutor(max_workers=16) as pool:
            paths = [f"/v2/?burst={index}" for index in range(BURST)]
            list(pool.map(lambda path: send(server, path, {}), paths))
    return (tmp / "gunicorn.log").read_text()


def send(server, path, headers):
    """GET ``path``, whatever the status."""
    try:
        with server.open(path, headers) as response:
            response.read()
    except urllib.error.HTTPError as error:
        error.close()


def send_raw(server, request):
    """Send raw bytes as a request and read the answer, whatever it is."""
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        while connection.recv(65536):
            pass


def test_no_secret_reaches_the_access_log(access_log):
    assert access_log.count("REDACTED") >= 4 * len(SECRET_QUERIES)
    assert SECRET not in access_log
    assert base64.b64encode(f"alice:{SECRET}".encode()).decode() not in access_log


def test_the_rest_of_the_request_line_is_kept(access_log):
    assert '"GET /v2/?access_token=REDACTED HTTP/1.1" 401' in access_log
    assert "GET /v2/?visible=kept HTTP/1.1" in access_log
    assert "service=registry&token=REDACTED&scope=repository:a:pull" in access_log


def test_every_request_has_its_line_once_the_server_stopped(access_log):
    for index in range(BURST):
        assert access_log.count(f'"GET /v2/?burst={index} HTTP/1.1" 401') == 1
    assert access_log.count('"GET /v2/?visible=kept HTTP/1.1" 401') == 1


def test_requests_refused_unread_have_their_line_too(access_log):
    refused = [line for line in access_log.splitlines() if '"-" 400' in line]
    assert len(refused) >= len(UNREADABLE_REQUESTS) + 1  # and RAW_REQUESTS[0]
