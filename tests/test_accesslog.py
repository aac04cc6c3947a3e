"""The access log's redaction of secret query parameters and headers."""

import base64
import datetime

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from accesslog import (
    RedactingLogger,
    basic_user,
    format_atoms,
    is_secret_header,
    redact_atom,
    redact_query,
    redact_text,
    redact_uri,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("access_token=abc", "access_token=REDACTED"),
        ("scope=a&TOKEN=abc&n=1", "scope=a&TOKEN=REDACTED&n=1"),
        ("refresh%5Ftoken=abc", "refresh%5Ftoken=REDACTED"),
        ("password", "password=REDACTED"),
        ("scope=repository:a:pull", "scope=repository:a:pull"),
        ("", ""),
    ],
)
def test_secret_query_values_are_redacted(query, expected):
    assert redact_query(query) == expected


def test_only_the_query_of_a_uri_changes():
    assert redact_uri("/v2/a/tags/list?token=x") == "/v2/a/tags/list?token=REDACTED"
    assert redact_uri("/v2/token/tags/list") == "/v2/token/tags/list"


@pytest.mark.parametrize(
    ("atom", "secret"),
    [
        ("{authorization}i", True),
        ("{http_authorization}e", True),
        ("{http_cookie}e", True),
        ("{set-cookie}o", True),
        ("{user-agent}i", False),
        ("{remote_addr}e", False),
        ("{authorization}o", False),
    ],
)
def test_credential_headers_are_told_apart(atom, secret):
    assert is_secret_header(atom) is secret


def test_the_atoms_of_a_format_are_named_as_gunicorn_looks_them_up():
    used = format_atoms('%(h)s "%(r)s" %({Authorization}i)s %({X-Token}o)s')
    assert used == {"h", "r", "{authorization}i", "{x-token}o"}


GUNICORN_ATOMS = [
    "h",
    "l",
    "u",
    "t",
    "r",
    "s",
    "m",
    "U",
    "q",
    "H",
    "b",
    "B",
    "f",
    "a",
    "T",
    "D",
    "M",
    "L",
    "p",
]
EXTRA_ATOMS = [
    "{user-agent}i",
    "{Accept}i",
    "{x-missing}i",
    "{content-type}o",
    "{remote_addr}e",
    "{http_authorization}e",
    "{authorization}i",
    "{raw_uri}e",
    "nonsense",
]


class Answer:
    status = "200 OK"
    sent = 523
    headers = [("Content-Type", "application/json"), ("Set-Cookie", "s=1")]


class Request:
    headers = [
        ("USER-AGENT", 'curl/8 "quoted"'),
        ("ACCEPT", "text/plain"),
        ("ACCEPT", "application/json"),
        ("AUTHORIZATION", "Basic YWxpY2U6c2VjcmV0"),
    ]


ENVIRON = {
    "REMOTE_ADDR": "127.0.0.1",
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/v2/a/tags/list?n=1&token=secret",
    "PATH_INFO": "/v2/a/tags/list",
    "QUERY_STRING": "n=1&token=secret",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_USER_AGENT": 'curl/8 "quoted"',
    "HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0",
}


def gunicorn_line(log_format, duration):
    """The line gunicorn's own atoms give, redacted as the access log redacts."""
    config = Config()
    config.set("access_log_format", log_format)
    atoms = Logger(config).atoms(Answer(), Request(), ENVIRON, duration)
    for key in format_atoms(log_format):
        if isinstance(atoms.get(key), str):
            atoms[key] = redact_atom(key, atoms[key])
    atoms["r"] = f"GET {redact_uri(ENVIRON['RAW_URI'])} HTTP/1.1"
    return log_format % SafeAtoms(atoms)


@pytest.mark.parametrize(
    "log_format",
    [
        Config().access_log_format,
        " ".join(f"%({atom})s" for atom in GUNICORN_ATOMS + EXTRA_ATOMS),
    ],
    ids=["default", "every atom"],
)
def test_atoms_are_made_as_gunicorn_makes_them_but_redacted(monkeypatch, log_format):
    monkeypatch.setattr(Logger, "now", lambda self: "[04/Dec/2026:10:00:00 +0000]")
    duration = datetime.timedelta(seconds=1, microseconds=2345)
    config = Config()
    config.set("access_log_format", log_format)
    ours = RedactingLogger(config).atoms(Answer(), Request(), ENVIRON, duration)

    line = log_format % SafeAtoms(ours)

    assert line == gunicorn_line(log_format, duration)
    assert "secret" not in line and "YWxpY2U6c2VjcmV0" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Invalid request line: 'GET /token?password=pw&x=1 HTTP/1.1'",
            "Invalid request line: 'GET /token?password=REDACTED&x=1 HTTP/1.1'",
        ),
        (
            "GET http://alice:pw@host/v2/ HTTP/1.1",
            "GET http://REDACTED@host/v2/ HTTP/1.1",
        ),
        ("/token?scope=a;token=pw", "/token?scope=a;token=REDACTED"),
        ("//alice:pw@host/v2/", "//REDACTED@host/v2/"),
        ("/v2/?x=1#password=pw", "/v2/?x=1#REDACTED"),
        ("/v2/#anything", "/v2/#REDACTED"),
        ("GET /v2/?x=1# HTTP/1.1", "GET /v2/?x=1# HTTP/1.1"),
        ("http://u:pw@h/p?token=t#frag", "http://REDACTED@h/p?token=REDACTED#REDACTED"),
        (
            "Invalid header: Authorization: Basic cHc=",
            "Invalid header: Authorization: REDACTED",
        ),
        ("Slow request head from ip=127.0.0.1", "Slow request head from ip=127.0.0.1"),
    ],
)
def test_secrets_quoted_in_server_messages_are_redacted(text, expected):
    assert redact_text(text) == expected


def basic(text):
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "user"),
    [
        (basic("alice:secret"), "alice"),
        (basic("alice:"), "alice"),
        ("basic " + base64.b64encode(b"bob:pw").decode(), "bob"),
        (basic("ghp_a-bare-token"), None),  # no colon: may be a secret
        (basic("mallory\n127.0.0.1 - admin:pw"), None),  # would forge a line
        (basic("tab\there:pw"), None),
        ("Basic not base64!", None),
        ("Bearer " + base64.b64encode(b"alice:secret").decode(), None),
        ("", None),
    ],
)
def test_only_a_plain_basic_user_name_is_logged(authorization, user):
    assert basic_user(authorization) == user
