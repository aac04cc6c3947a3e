"""gunicorn's access log keeps no token, password or credential header."""

import base64
import os
import urllib.error

import pytest

from tests.e2e.conftest import Server, free_port, serving

SECRET = "s3cr3t-value-never-logged"
# gunicorn's default line plus the header and environ atoms that carry secrets.
LOG_FORMAT = (
    '%(h)s "%(r)s" %(s)s q=%(q)s auth=%({authorization}i)s '
    "cookie=%({cookie}i)s env=%({http_authorization}e)s uri=%({raw_uri}e)s"
)
SECRET_QUERIES = [
    f"/v2/?access_token={SECRET}",
    f"/token?service=registry&token={SECRET}&scope=repository:a:pull",
    f"/token?password={SECRET}",
    f"/token?REFRESH_TOKEN={SECRET}",
    f"/token?access%5Ftoken={SECRET}",
]


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
    return (tmp / "gunicorn.log").read_text()


def send(server, path, headers):
    """GET ``path``, whatever the status."""
    try:
        with server.open(path, headers) as response:
            response.read()
    except urllib.error.HTTPError as error:
        error.close()


def test_no_secret_reaches_the_access_log(access_log):
    assert access_log.count("REDACTED") >= 4 * len(SECRET_QUERIES)
    assert SECRET not in access_log
    assert base64.b64encode(f"alice:{SECRET}".encode()).decode() not in access_log


def test_the_rest_of_the_request_line_is_kept(access_log):
    assert '"GET /v2/?access_token=REDACTED HTTP/1.1" 401' in access_log
    assert "GET /v2/?visible=kept HTTP/1.1" in access_log
    assert "service=registry&token=REDACTED&scope=repository:a:pull" in access_log
