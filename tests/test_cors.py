"""CORS: configured origins may call the API from a browser; others get nothing."""

import pytest

from app import create_app
from app.config import read_environment

ORIGIN = "http://127.0.0.1:8080"
OTHER_ORIGIN = "http://localhost:9999"


@pytest.fixture
def cors_client(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "REGISTRY_CORS_ORIGINS": [ORIGIN],
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        }
    )
    return app.test_client()


def preflight(client, origin, path="/v2/some/repo/manifests/latest"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_preflight_from_an_allowed_origin_is_answered_without_auth(cors_client):
    response = preflight(cors_client, ORIGIN)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Type" not in response.headers
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "range"} <= set(allowed.split(", "))


def test_preflight_reaches_upload_routes_too(cors_client):
    response = preflight(cors_client, ORIGIN, "/v2/some/repo/blobs/uploads/")

    assert response.status_code == 204
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]


def test_answers_expose_the_registry_headers_even_on_a_challenge(cors_client):
    response = cors_client.get("/v2/", headers={"Origin": ORIGIN})

    assert response.status_code == 401
    exposed = response.headers["Access-Control-Expose-Headers"]
    for header in ("Docker-Content-Digest", "Link", "WWW-Authenticate"):
        assert header in exposed


def test_other_origins_get_no_cors_headers(cors_client):
    answer = cors_client.get("/v2/", headers={"Origin": OTHER_ORIGIN})
    refused = preflight(cors_client, OTHER_ORIGIN)

    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_without_configured_origins_no_cors_header_is_sent(client):
    response = preflight(client, ORIGIN)

    assert "Access-Control-Allow-Origin" not in response.headers


def test_origins_come_from_a_comma_separated_variable():
    environ = {"REGISTRY_CORS_ORIGINS": f"{ORIGIN}, {OTHER_ORIGIN},"}

    settings = read_environment(environ)

    assert settings["REGISTRY_CORS_ORIGINS"] == [ORIGIN, OTHER_ORIGIN]


@pytest.mark.parametrize(
    "path", ["/ui/", "/ui/delete/some/repo", "/ui/sign-in", "/", "/metrics"]
)
def test_pages_outside_the_api_get_no_cors_headers(cors_client, path):
    answered = cors_client.get(path, headers={"Origin": ORIGIN})
    preflighted = preflight(cors_client, ORIGIN, path)
    for response in (answered, preflighted):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_listed_origin_cannot_post_a_ui_delete_with_credentials(cors_client):
    response = preflight(cors_client, ORIGIN, "/ui/delete/some/repo")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_the_token_endpoint_answers_a_listed_origin(cors_client):
    response = cors_client.get("/token", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
