"""Helpers for tests of accounts, tokens and rules: an app with users, credentials."""

import base64

from app import create_app

# The cheapest bcrypt cost, so tests hash quickly; the format is the same.
TEST_ROUNDS = 4


# Every file the application writes, kept under the test's own folder.
INSTANCE_FILES = {
    "REGISTRY_STORAGE_ROOT": "storage",
    "REGISTRY_SIGNING_KEY_FILE": "signing.key",
    "REGISTRY_HTPASSWD_FILE": "htpasswd",
    "REGISTRY_GROUPS_FILE": "groups",
    "REGISTRY_LOGIN_FAILURES_FILE": "login-failures.sqlite",
}


def make_app(tmp_path, **settings):
    """Return an app keeping everything under tmp_path, anonymous push off."""
    config = {key: str(tmp_path / name) for key, name in INSTANCE_FILES.items()}
    config.update(TESTING=True, REGISTRY_BCRYPT_ROUNDS=TEST_ROUNDS)
    return create_app({**config, **settings})


def add_user(app, name, password):
    """Create a user through the app's own accounts."""
    app.extensions["registry_accounts"].set_password(name, password)


def basic(name, password):
    """Return headers carrying Basic credentials."""
    encoded = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def login_token(client, name, password, *scopes):
    """Return a token for ``scopes`` issued to a user with Basic credentials."""
    response = client.get(
        "/token", query_string={"scope": list(scopes)}, headers=basic(name, password)
    )
    assert response.status_code == 200, response.data
    return response.json["token"]


def with_token(token):
    return {"Authorization": f"Bearer {token}"}
