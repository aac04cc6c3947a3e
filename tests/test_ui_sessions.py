"""Web UI sessions end with a sign-out, a password change, a removal or their age."""

import time

import pytest

from tests.accounts_kit import add_user, make_app
from tests.conftest import seed_image
from tests.test_ui import delete, form_token_of

SESSION_COOKIE = "session"


@pytest.fixture
def app(tmp_path):
    """The default rule (signed-in users delete), with alice as an account."""
    registry = make_app(tmp_path)
    add_user(registry, "alice", "wonderland")
    seed_image(registry.extensions["registry_storage"], "team/app", "v1")
    return registry


@pytest.fixture
def browser(app):
    """A client signed in as alice through the form."""
    client = app.test_client()
    form = {"username": "alice", "password": "wonderland"}
    form["csrf_token"] = form_token_of(client)
    assert client.post("/ui/sign-in", data=form).status_code == 303
    return client


def signed_in_account(client):
    return client.get("/ui/sign-in?format=json").json["account"]


def copy_of(app, client):
    """Return another client carrying a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, client.get_cookie(SESSION_COOKIE).value)
    return thief


def refuses_delete(app, client, token):
    """Tell whether a delete posted with the form token is refused, the tag kept."""
    status = delete(client, "team/app", "v1", token).status_code
    tags = app.extensions["registry_storage"].list_tags("team/app")
    return status == 403 and tags == ["v1"]


def test_a_fresh_session_is_signed_in(browser):
    assert signed_in_account(browser) == "alice"


def test_a_copied_cookie_stops_working_after_sign_out(app, browser):
    thief = copy_of(app, browser)
    assert signed_in_account(thief) == "alice"
    stolen_token = form_token_of(thief, "/ui/")

    token = form_token_of(browser, "/ui/")
    browser.post("/ui/sign-out", data={"csrf_token": token})

    assert signed_in_account(thief) is None
    assert refuses_delete(app, thief, stolen_token)


def test_a_password_change_ends_the_session(app, browser):
    token = form_token_of(browser, "/ui/")
    add_user(app, "alice", "looking-glass")
    assert signed_in_account(browser) is None
    assert refuses_delete(app, browser, token)


def test_a_removed_user_may_no_longer_delete(app, browser):
    token = form_token_of(browser, "/ui/")
    app.extensions["registry_accounts"].remove("alice")
    assert signed_in_account(browser) is None
    assert refuses_delete(app, browser, token)


def test_a_session_older_than_the_expiry_is_refused(app, browser):
    token = form_token_of(browser, "/ui/")
    expiry = app.config["REGISTRY_UI_SESSION_EXPIRY"]
    with browser.session_transaction() as session:
        session["signed_in_at"] = time.time() - expiry - 1
    assert signed_in_account(browser) is None
    assert refuses_delete(app, browser, token)


def test_a_session_naming_only_an_account_is_refused(app):
    client = app.test_client()
    with client.session_transaction() as session:
        session["account"] = "alice"
    assert signed_in_account(client) is None


def test_signing_in_again_after_sign_out_works(app, browser):
    token = form_token_of(browser, "/ui/")
    browser.post("/ui/sign-out", data={"csrf_token": token})
    form = {"username": "alice", "password": "wonderland"}
    form["csrf_token"] = form_token_of(browser)
    browser.post("/ui/sign-in", data=form)
    assert signed_in_account(browser) == "alice"
    assert delete(browser, "team/app", "v1").status_code == 303


def test_a_sign_out_holds_in_every_worker(tmp_path, app, browser):
    other_worker = make_app(tmp_path)
    thief = copy_of(other_worker, browser)
    assert signed_in_account(thief) == "alice"

    token = form_token_of(browser, "/ui/")
    browser.post("/ui/sign-out", data={"csrf_token": token})

    assert signed_in_account(thief) is None
