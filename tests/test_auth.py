"""Tokens from /token, and the Bearer challenge on /v2/."""

import pytest

from app import create_app
from tests.conftest import bearer, get_token, seed_image


def test_version_check_without_token_answers_with_the_challenge(client):
    response = client.get("/v2/", base_url="http://codehex-local:5080")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="http://codehex-local:5080/token",service="registry"'
    )


def test_version_check_with_token_answers_200_and_the_api_version(client):
    token = get_token(client)
    response = client.get("/v2/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_challenge_names_the_scope_a_manifest_needs(client):
    response = client.head("/v2/a/b/manifests/latest")
    assert response.status_code == 401
    assert 'scope="repository:a/b:pull"' in response.headers["WWW-Authenticate"]


def test_token_response_carries_token_access_token_and_expiry(client):
    response = client.get("/token?service=registry&scope=repository:hello:pull")
    assert response.json["token"] == response.json["access_token"]
    assert response.json["expires_in"] >= 60 and "issued_at" in response.json


def test_token_for_another_service_is_refused(client):
    response = client.get("/token?service=elsewhere&scope=repository:hello:pull")
    assert response.status_code == 400
    assert response.json["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer nonsense", "Basic Zm9vOmJhcg==", "Bearer a.b.c", "garbage"],
)
def test_missing_or_forged_tokens_are_refused(client, authorization):
    response = client.get("/v2/", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json["errors"][0]["code"] == "UNAUTHORIZED"


def test_token_signed_with_another_key_is_refused(client, tmp_path):
    other = create_app(
        {
            "TESTING": True,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "other"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "other.key"),
        }
    )
    headers = bearer(other.test_client(), "hello")
    response = client.get("/v2/hello/tags/list", headers=headers)
    assert response.status_code == 401


def test_token_for_one_repository_does_not_open_another(client, storage):
    seed_image(storage, "secret", "v1")
    response = client.get("/v2/secret/tags/list", headers=bearer(client, "hello"))
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_anonymous_pull_can_be_switched_off(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "REGISTRY_ANONYMOUS_PULL": False,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        }
    )
    seed_image(app.extensions["registry_storage"], "hello", "v1")
    client = app.test_client()
    response = client.get("/v2/hello/tags/list", headers=bearer(client, "hello"))
    assert response.status_code == 401


def test_scope_names_may_hold_a_host_and_port(client):
    token = get_token(client, "repository:127.0.0.1:5080/hello:pull")
    assert token


def test_unknown_actions_and_types_are_ignored_not_errors(client):
    response = client.get("/token?scope=repository:hello:pull,fly&scope=weird:x:y")
    assert response.status_code == 200


def test_expired_token_is_refused(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "REGISTRY_TOKEN_EXPIRY": -1,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        }
    )
    client = app.test_client()
    response = client.get("/v2/", headers=bearer(client, "hello"))
    assert response.status_code == 401


def test_signing_key_is_created_private_and_reused(app, tmp_path):
    key_file = tmp_path / "signing.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = create_app(app.config)
    assert again.extensions["registry_tokens"].serializer.secret_keys == (
        app.extensions["registry_tokens"].serializer.secret_keys
    )


def test_host_header_with_quotes_does_not_break_the_challenge(client):
    response = client.get("/v2/", headers={"Host": 'evil",x="y'})
    assert response.status_code == 401
    assert "evil" not in response.headers["WWW-Authenticate"]
