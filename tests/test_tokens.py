"""``GET`` and ``POST /token``: credentials, refresh tokens, rate limits, bad input."""

import base64
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.accounts_kit import add_user, basic, login_token, make_app, with_token

PUSH_SCOPE = "repository:team/app:pull,push"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, REGISTRY_LOGIN_MAX_FAILURES=3)
    add_user(app, "alice", "right")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def granted(client, headers=None, **query):
    """Return the access a GET /token grants, as (type, name, actions) triples."""
    response = client.get("/token", query_string=query, headers=headers or {})
    assert response.status_code == 200, response.data
    grant = client.application.extensions["registry_tokens"].verify(
        response.json["token"]
    )
    return [(e["type"], e["name"], e["actions"]) for e in grant["access"]]


def oauth(client, **form):
    return client.post("/token", data={"service": "registry", **form})


def test_signed_in_user_is_granted_push(client):
    access = granted(client, basic("alice", "right"), scope=PUSH_SCOPE)
    assert access == [("repository", "team/app", ["pull", "push"])]


def test_anonymous_caller_is_granted_pull_only(client):
    access = granted(client, scope=PUSH_SCOPE)
    assert access == [("repository", "team/app", ["pull"])]


def test_token_names_the_user_as_its_subject(app, client):
    token = login_token(client, "alice", "right")
    assert app.extensions["registry_tokens"].verify(token)["sub"] == "alice"


def test_scopes_repeated_or_space_separated_are_all_granted(client):
    scopes = ["repository:a:pull repository:b:pull", "repository:c:pull"]
    names = [name for _, name, _ in granted(client, scope=scopes)]
    assert names == ["a", "b", "c"]


def test_names_holding_host_and_port_and_resource_classes_are_read(client):
    scope = "repository(plugin):127.0.0.1:5080/team/app:pull"
    access = granted(client, scope=scope)
    assert access == [("repository", "127.0.0.1:5080/team/app", ["pull"])]


def test_unknown_types_and_actions_are_ignored(client):
    access = granted(client, scope=["weird:thing:pull", "repository:a:fly,pull"])
    assert access == [("repository", "a", ["pull"])]


def test_wrong_password_answers_401_with_a_json_body(client):
    response = client.get("/token", headers=basic("alice", "wrong"))
    assert response.status_code == 401
    assert response.json["errors"][0]["code"] == "UNAUTHORIZED"


def test_offline_token_brings_a_refresh_token_only_with_credentials(client):
    query = {"offline_token": "true", "client_id": "docker", "account": "alice"}
    signed_in = client.get(
        "/token", query_string=query, headers=basic("alice", "right")
    )
    anonymous = client.get("/token", query_string=query)
    assert "refresh_token" in signed_in.json
    assert "refresh_token" not in anonymous.json


def test_oauth_password_grant_answers_like_containerd_expects(client):
    response = oauth(
        client,
        grant_type="password",
        username="alice",
        password="right",
        client_id="containerd-client",
        scope=PUSH_SCOPE,
        access_type="offline",
    )
    assert response.status_code == 200, response.data
    assert response.json["scope"] == PUSH_SCOPE
    assert response.json["expires_in"] >= 60 and response.json["refresh_token"]


def test_refresh_token_gets_new_access_tokens_for_its_user(app, client):
    login = oauth(
        client,
        grant_type="password",
        username="alice",
        password="right",
        client_id="docker",
        access_type="offline",
    )
    refreshed = oauth(
        client,
        grant_type="refresh_token",
        refresh_token=login.json["refresh_token"],
        client_id="docker",
        scope=PUSH_SCOPE,
    )
    assert refreshed.status_code == 200, refreshed.data
    assert refreshed.json["scope"] == PUSH_SCOPE


def refresh_token_of(client):
    response = client.get("/token?offline_token=true", headers=basic("alice", "right"))
    return response.json["refresh_token"]


def refresh(client, token):
    return oauth(client, grant_type="refresh_token", refresh_token=token, client_id="t")


def assert_login_refused(response, message):
    """A refused login or refresh token: 401 UNAUTHORIZED, saying why."""
    assert response.status_code == 401
    [error] = response.json["errors"]
    assert (error["code"], error["message"]) == ("UNAUTHORIZED", message)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


ENDINGS = {
    "password-changed": lambda app: add_user(app, "alice", "changed"),
    "user-removed": lambda app: app.extensions["registry_accounts"].remove("alice"),
}


@pytest.mark.parametrize("end", ENDINGS.values(), ids=ENDINGS)
def test_a_refresh_token_ended_is_no_longer_valid(app, client, end):
    token = refresh_token_of(client)
    end(app)
    assert_login_refused(refresh(client, token), "refresh token is no longer valid")


def test_a_refresh_token_ended_then_the_user_made_again_stays_ended(app, client):
    token = refresh_token_of(client)
    app.extensions["registry_accounts"].remove("alice")
    add_user(app, "alice", "right again")
    assert_login_refused(refresh(client, token), "refresh token is no longer valid")


def test_refresh_token_for_another_service_is_refused(tmp_path, client):
    other = make_app(tmp_path, REGISTRY_SERVICE="elsewhere")
    add_user(other, "alice", "right")
    token = refresh_token_of(other.test_client())
    assert_login_refused(refresh(client, token), "refresh token is not valid")


@pytest.mark.parametrize("token", ["", "forged", "a.b.c"])
def test_a_refresh_token_never_issued_is_not_valid(client, token):
    assert_login_refused(refresh(client, token), "refresh token is not valid")


def test_a_wrong_password_still_says_so(client):
    response = oauth(client, grant_type="password", username="alice", password="x")
    assert_login_refused(response, "incorrect username or password")


def test_refresh_and_access_tokens_are_not_interchangeable(client):
    refresh_token = refresh_token_of(client)
    access_token = login_token(client, "alice", "right")
    assert client.get("/v2/", headers=with_token(refresh_token)).status_code == 401
    assert refresh(client, access_token).status_code == 401


def test_access_token_for_another_service_is_refused(tmp_path, client):
    other = make_app(tmp_path, REGISTRY_SERVICE="elsewhere")
    token = login_token(other.test_client(), "alice", "right", "repository:a:pull")
    response = client.get("/v2/a/tags/list", headers=with_token(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_unknown_grant_type_is_a_400(client):
    response = oauth(client, grant_type="authorization_code", code="x")
    assert response.status_code == 400
    assert response.json["errors"][0]["code"] == "UNSUPPORTED"


def encode(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + encode("no-colon-here"),
        "Basic " + encode("alice:wrong"),
        "Basic " + encode("nobody:right"),
        "Bearer some.token.value",
        "Digest username=alice",
        "garbage",
    ],
)
def test_malformed_or_wrong_credentials_get_401_and_no_token(client, authorization):
    response = client.get(
        "/token",
        query_string={"scope": PUSH_SCOPE},
        headers={"Authorization": authorization},
    )
    assert response.status_code == 401
    assert "token" not in response.json and response.json["errors"]


@pytest.mark.parametrize(
    "scope",
    [
        "repository::pull",
        ":team/app:pull",
        "repository:team/app",
        "repository:team/app:pull:",
        "repository:a:b:c:pull",
        "repository:Team/App:pull",
        "repository:team/app:pull;push",
        "repository:../etc:pull",
    ],
)
def test_scopes_with_stray_colons_get_400_and_no_token(client, scope):
    response = client.get("/token", query_string={"scope": scope})
    assert response.status_code == 400
    assert "type:name:actions" in response.json["errors"][0]["message"]
    assert "token" not in response.json


def test_huge_scope_lists_get_400_and_no_token(client):
    scopes = " ".join(f"repository:r{number}:pull" for number in range(1000))
    response = client.get("/token", query_string={"scope": scopes})
    assert response.status_code == 400
    assert "token" not in response.json


def test_failed_logins_are_limited_per_address(client):
    for _ in range(3):
        client.get("/token", headers=basic("alice", "wrong"))
    blocked = client.get("/token", headers=basic("alice", "right"))
    assert blocked.status_code == 429
    assert blocked.json["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(blocked.headers["Retry-After"]) > 0


def test_the_limit_spares_other_addresses_and_anonymous_requests(client):
    for _ in range(3):
        client.get("/token", headers=basic("alice", "wrong"))
    other = client.get(
        "/token",
        headers=basic("alice", "right"),
        environ_base={"REMOTE_ADDR": "127.0.0.2"},
    )
    assert other.status_code == 200
    assert client.get("/token").status_code == 200


def test_the_limit_is_shared_between_workers(tmp_path, client):
    for _ in range(3):
        client.get("/token", headers=basic("alice", "wrong"))
    other_worker = make_app(tmp_path, REGISTRY_LOGIN_MAX_FAILURES=3)
    response = other_worker.test_client().get("/token", headers=basic("alice", "right"))
    assert response.status_code == 429


def test_parallel_wrong_logins_check_no_more_passwords_than_the_limit(app):
    checked = []
    accounts = app.extensions["registry_accounts"]
    authenticate = accounts.authenticate

    def counted_authenticate(name, password):
        checked.append(name)
        return authenticate(name, password)

    accounts.authenticate = counted_authenticate

    def wrong_login(_):
        answer = app.test_client().get("/token", headers=basic("alice", "wrong"))
        return answer.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(wrong_login, range(60)))
    assert sorted(statuses) == [401] * 3 + [429] * 57
    assert len(checked) == 3


def test_a_right_password_gives_its_attempt_back(client):
    for _ in range(5):
        assert client.get("/token", headers=basic("alice", "right")).status_code == 200
    for _ in range(3):
        assert client.get("/token", headers=basic("alice", "wrong")).status_code == 401
    assert client.get("/token", headers=basic("alice", "wrong")).status_code == 429


def test_the_limit_counts_forged_refresh_tokens(client):
    for _ in range(3):
        refresh(client, "forged")
    assert refresh(client, "forged").status_code == 429


def test_tokens_never_reach_the_log(client, caplog):
    with caplog.at_level(logging.DEBUG):
        token = login_token(client, "alice", "right", PUSH_SCOPE)
        client.get("/v2/team/app/tags/list", headers=with_token(token))
        client.get("/v2/", headers=with_token(token + "x"))
    assert token not in caplog.text and "right" not in caplog.text


def test_a_remembered_token_still_expires(app, client, monkeypatch):
    token = login_token(client, "alice", "right", PUSH_SCOPE)
    signer = app.extensions["registry_tokens"]
    assert signer.verify(token) is not None
    later = time.time() + signer.expiry + 2
    monkeypatch.setattr(time, "time", lambda: later)
    assert signer.verify(token) is None
