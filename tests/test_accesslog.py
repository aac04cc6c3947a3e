"""The access log's redaction of secret query parameters and headers."""

import pytest

from accesslog import format_atoms, is_secret_header, redact_query, redact_uri


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
