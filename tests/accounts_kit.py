"""What tests of accounts, tokens and rules share: an app with users, credentials."""

import base64

from tests.conftest import make_app as make_test_app

# The cheapest bcrypt cost, so tests hash quickly; the format is the same.
TEST_ROUNDS = 4


def make_app(tmp_path, **settings):
    """Return an app keeping everything under tmp_path, anonymous push off."""
    return make_test_app(tmp_path, REGISTRY_BCRYPT_ROUNDS=TEST_ROUNDS, **settings)


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
