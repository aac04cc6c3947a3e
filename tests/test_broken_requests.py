"""Requests Werkzeug refuses, and Host headers that name no host, under the test client.

The same cases behind gunicorn are in tests/e2e/test_hostile_http.py; here the
body is short of its Content-Length with the input not marked terminated, so
Werkzeug itself notices and raises ClientDisconnected.
"""

import io

import pytest

from tests.registry_api import Registry, error_code

NAME = "broken/requests"


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


def short_body(declared, sent):
    """Request arguments for a body of ``sent`` that declares ``declared`` bytes."""
    return {
        "input_stream": io.BytesIO(sent),
        "environ_overrides": {"CONTENT_LENGTH": str(declared)},
    }


def test_short_patch_under_werkzeug_is_size_invalid(registry):
    location = registry.start_upload().headers["Location"]
    assert registry.patch(location, b"12345").status_code == 202
    headers = {"Content-Type": "application/octet-stream"}

    response = registry.request("PATCH", location, headers, **short_body(10, b"abc"))

    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")
    assert registry.request("GET", location).headers["Range"] == "0-4"


def test_short_token_form_is_size_invalid(client):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    response = client.post("/token", headers=headers, **short_body(100, b"grant"))

    assert (response.status_code, error_code(response)) == (400, "SIZE_INVALID")


@pytest.mark.parametrize(
    "server_name,server_port,host",
    [
        ("localhost", "80", "localhost"),
        ("127.0.0.1", "5080", "127.0.0.1:5080"),
        ("::1", "5080", "[::1]:5080"),
    ],
)
def test_odd_host_gets_the_realm_of_the_server_address(
    client, server_name, server_port, host
):
    environ = {"SERVER_NAME": server_name, "SERVER_PORT": server_port}

    response = client.get("/v2/", headers={"Host": "a b"}, environ_overrides=environ)

    assert f'realm="http://{host}/token"' in response.headers["WWW-Authenticate"]
