"""Errors of the web UI: an HTML page for a browser, OCI JSON for the twin."""

import re

import pytest

from app.ui import inventory
from tests.conftest import ClosingClient, make_app, seed_image
from tests.test_ui import accounts, delete, form_token_of, private_client, sign_in

# The fixtures of the UI tests, shared here by name.
__all__ = ["accounts", "private_client"]

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
WANTS_JSON = {"Accept": "application/json"}
SIGN_IN_LINK = re.compile(r'class="sign-in-link" href="([^"]+)"')


def assert_error_page(response, status, message):
    """Check that ``response`` is the site's HTML error page for ``status``."""
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert f"<h1>{status} " in page
    assert message in page
    assert "<nav>" in page and 'href="/ui/storage"' in page
    assert 'href="/ui/">Back to the repositories</a>' in page
    assert '"errors"' not in page


def assert_oci_error(response, status, code):
    """Check that ``response`` is the registry's OCI error JSON."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert [error["code"] for error in response.json["errors"]] == [code]


BAD_PAGES = [
    ("/ui/repositories/Bad..Name", 400, "NAME_INVALID", "invalid repository name"),
    ("/ui/repositories/absent", 404, "NAME_UNKNOWN", "repository name not known"),
    ("/ui/manifests/team/app/no-such-tag", 404, "MANIFEST_UNKNOWN", "manifest"),
    ("/ui/manifests/team/app/sha256:abc", 400, "DIGEST_INVALID", "digest"),
    ("/ui/delete/team/app?reference=v1", 403, "DENIED", "sign in first"),
]


@pytest.mark.parametrize("path, status, code, message", BAD_PAGES)
def test_a_browser_gets_an_error_page(client, storage, path, status, code, message):
    seed_image(storage, "team/app", "v1")
    response = client.get(path, headers=BROWSER)
    assert_error_page(response, status, message)
    assert (SIGN_IN_LINK.search(response.get_data(as_text=True)) is not None) == (
        status == 403
    )


@pytest.mark.parametrize("path, status, code, message", BAD_PAGES)
@pytest.mark.parametrize("twin", ["format=json", "accept"])
def test_the_twin_gets_oci_json(client, storage, path, status, code, twin, message):
    seed_image(storage, "team/app", "v1")
    if twin == "accept":
        response = client.get(path, headers=WANTS_JSON)
    else:
        separator = "&" if "?" in path else "?"
        response = client.get(path + separator + "format=json", headers=BROWSER)
    assert_oci_error(response, status, code)


def test_the_twin_is_what_the_page_answered_before(client, storage):
    response = client.get("/ui/repositories/absent?format=json")
    assert response.json == {
        "errors": [
            {
                "code": "NAME_UNKNOWN",
                "message": "repository name not known to registry",
                "detail": {"name": "absent"},
            }
        ]
    }


def test_a_private_repository_offers_an_encoded_sign_in(private_client):
    response = private_client.get("/ui/manifests/secret/app/v1?x=1", headers=BROWSER)
    assert_error_page(response, 403, "sign in as an account that may pull")
    link = SIGN_IN_LINK.search(response.get_data(as_text=True)).group(1)
    assert link == "/ui/sign-in?next=%2Fui%2Fmanifests%2Fsecret%2Fapp%2Fv1%3Fx%3D1"


def test_a_hidden_repository_looks_like_a_missing_one(private_client):
    hidden = private_client.get("/ui/repositories/secret/app", headers=BROWSER)
    missing = private_client.get("/ui/repositories/secret/gone", headers=BROWSER)
    assert hidden.status_code == missing.status_code == 403
    hidden_page = hidden.get_data(as_text=True).replace("app", "NAME")
    missing_page = missing.get_data(as_text=True).replace("gone", "NAME")
    assert hidden_page == missing_page


def test_who_may_not_delete_gets_a_page_without_sign_in(client, storage, accounts):
    seed_image(storage, "team/app", "v1")
    sign_in(client, "bob")
    response = client.get("/ui/delete/team/app?reference=v1", headers=BROWSER)
    assert_error_page(response, 403, "sign in as an account that may delete")
    assert SIGN_IN_LINK.search(response.get_data(as_text=True)) is None
    assert "Sign out bob" in response.get_data(as_text=True)


def test_a_refused_delete_post_gets_a_page_and_changes_nothing(
    client, storage, accounts
):
    seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    response = delete(client, "team/app", "v1", token="forged", headers=BROWSER)
    assert_error_page(response, 403, "the form is stale")
    assert storage.list_tags("team/app") == ["v1"]


@pytest.mark.parametrize("form", ["page", "twin"])
def test_a_delete_of_an_unknown_tag_answers_404(client, storage, accounts, form):
    seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    token = form_token_of(client)
    headers = BROWSER if form == "page" else WANTS_JSON
    response = delete(client, "team/app", "v9", token=token, headers=headers)
    if form == "page":
        assert_error_page(response, 404, "manifest unknown")
    else:
        assert_oci_error(response, 404, "MANIFEST_UNKNOWN")
    assert storage.list_tags("team/app") == ["v1"]


@pytest.fixture
def locked_out(tmp_path):
    """A client whose address has used up its failed sign-ins."""
    app = make_app(tmp_path, REGISTRY_LOGIN_MAX_FAILURES=2)
    app.test_client_class = ClosingClient
    client = app.test_client()
    for _ in range(2):
        wrong = {"username": "mallory", "password": "guess"}
        wrong["csrf_token"] = form_token_of(client)
        assert client.post("/ui/sign-in", data=wrong).status_code == 401
    return client


def test_a_locked_out_sign_in_gets_a_page(locked_out):
    form = {"username": "mallory", "password": "guess"}
    form["csrf_token"] = form_token_of(locked_out)
    response = locked_out.post("/ui/sign-in", data=form, headers=BROWSER)
    assert_error_page(response, 429, "too many failed logins")
    assert int(response.headers["Retry-After"]) > 0


def test_a_locked_out_sign_in_twin_gets_the_oci_error(locked_out):
    form = {"username": "mallory", "password": "guess"}
    form["csrf_token"] = form_token_of(locked_out)
    response = locked_out.post("/ui/sign-in?format=json", data=form)
    assert_oci_error(response, 429, "TOOMANYREQUESTS")
    assert int(response.headers["Retry-After"]) > 0


def test_the_api_answers_json_even_to_a_browser(client):
    response = client.get("/v2/absent/tags/list", headers=BROWSER)
    assert_oci_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("form", ["page", "twin"])
def test_an_unexpected_failure_answers_500_in_both_forms(
    client, storage, monkeypatch, form
):
    def fail(storage, name):
        raise RuntimeError("disk on fire")

    seed_image(storage, "team/app", "v1")
    monkeypatch.setattr(inventory, "describe_tags", fail)
    headers = BROWSER if form == "page" else WANTS_JSON
    response = client.get("/ui/repositories/team/app", headers=headers)
    if form == "page":
        assert_error_page(response, 500, "internal server error")
        assert "disk on fire" not in response.get_data(as_text=True)
    else:
        assert_oci_error(response, 500, "UNKNOWN")
