"""Personal namespaces: ``{user}/*`` guards every user's namespace, not the caller's."""

import pytest

from tests.accounts_kit import add_user, basic, make_app, with_token
from tests.conftest import seed_image
from tests.test_rules import RULES as EXAMPLE_RULES

# The README's example: the personal namespace rule first, then secret/*.
RULES = EXAMPLE_RULES[:2]


@pytest.fixture
def app(tmp_path):
    """The example rules with alice, bob and carol (of ops) as accounts."""
    (tmp_path / "groups").write_text("ops: carol\n")
    registry = make_app(tmp_path, REGISTRY_ACCESS_RULES=RULES)
    for account in ("alice", "bob", "carol"):
        add_user(registry, account, "pw")
    return registry


@pytest.fixture
def client(app):
    return app.test_client()


def start_upload(client, name, headers):
    """Return the status of a blob upload's start in repository ``name``."""
    return client.post(f"/v2/{name}/blobs/uploads/", headers=headers).status_code


def token_for(client, user, scope):
    """Return headers with the token /token gives ``user`` (None: anonymous)."""
    credentials = basic(user, "pw") if user else {}
    answer = client.get("/token", query_string={"scope": scope}, headers=credentials)
    return with_token(answer.json["token"])


def test_another_user_may_not_push_into_a_personal_namespace(app, client):
    headers = token_for(client, "bob", "repository:alice/app:pull,push")
    assert start_upload(client, "alice/app", headers) == 401
    assert not app.extensions["registry_storage"].repository_exists("alice/app")


def test_another_user_may_not_delete_in_a_personal_namespace(app, client):
    seeded = seed_image(app.extensions["registry_storage"], "alice/app", "v1")
    headers = token_for(client, "bob", "repository:alice/app:delete")
    answer = client.delete(
        f"/v2/alice/app/manifests/{seeded['digest']}", headers=headers
    )
    assert answer.status_code == 401
    assert app.extensions["registry_storage"].list_tags("alice/app") == ["v1"]


def test_the_owner_pushes_into_the_own_namespace(client):
    headers = token_for(client, "alice", "repository:alice/app:pull,push")
    assert start_upload(client, "alice/app", headers) == 202


def test_anonymous_may_not_pull_from_a_personal_namespace(app, client):
    seed_image(app.extensions["registry_storage"], "alice/app", "v1")
    headers = token_for(client, None, "repository:alice/app:pull")
    assert client.get("/v2/alice/app/manifests/v1", headers=headers).status_code == 401


def test_a_signed_in_user_pulls_from_another_personal_namespace(app, client):
    seed_image(app.extensions["registry_storage"], "alice/app", "v1")
    headers = token_for(client, "bob", "repository:alice/app:pull")
    assert client.get("/v2/alice/app/manifests/v1", headers=headers).status_code == 200


def test_a_user_named_like_a_protected_namespace_does_not_take_it_over(tmp_path):
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=RULES)
    add_user(app, "secret", "pw")  # as if dropped into htpasswd by hand
    seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    client = app.test_client()
    headers = token_for(client, "secret", "repository:secret/db:pull,push,delete")
    assert client.get("/v2/secret/db/manifests/v1", headers=headers).status_code == 401
    assert start_upload(client, "secret/db", headers) == 401


def test_user_add_refuses_a_name_a_rule_claims_as_namespace(app):
    result = app.test_cli_runner().invoke(
        args=["registry", "user", "add", "--password-stdin", "secret"],
        input="pw-long-enough\n",
    )
    assert result.exit_code != 0
    assert "namespace" in result.output
    assert app.extensions["registry_accounts"].find("secret") is None


def test_user_add_takes_a_name_no_rule_claims(app):
    result = app.test_cli_runner().invoke(
        args=["registry", "user", "add", "--password-stdin", "dave"],
        input="pw-long-enough\n",
    )
    assert result.exit_code == 0, result.output
    assert app.extensions["registry_accounts"].find("dave") is not None


def test_the_namespace_of_an_account_not_yet_created_is_guarded(client):
    headers = token_for(client, "bob", "repository:dave/app:push")
    assert start_upload(client, "dave/app", headers) == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v2/{name}/tags/list",
        "/v2/{name}/manifests/v1",
        "/v2/{name}/blobs/sha256:" + "0" * 64,
    ],
)
def test_a_hidden_repository_answers_as_a_missing_one_of_its_pattern(app, path):
    seed_image(app.extensions["registry_storage"], "alice/app", "v1")
    client = app.test_client()
    answers = []
    for name in ("alice/app", "alice/nothing"):
        headers = token_for(client, None, f"repository:{name}:pull")
        response = client.get(path.format(name=name), headers=headers)
        answers.append(
            (response.status_code, response.data.replace(name.encode(), b""))
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_a_single_repository_rule_reserves_its_name_too(tmp_path):
    rules = [
        {"repository": "{user}", "pull": ["owner"], "push": ["owner"]},
        {"repository": "release", "pull": ["anyone"], "push": ["group:ops"]},
    ]
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=rules)
    add_user(app, "release", "pw")
    client = app.test_client()
    headers = token_for(client, "release", "repository:release:push")
    assert start_upload(client, "release", headers) == 401
    assert app.extensions["registry_rules"].claims_namespace("release")


# A rule whose first component is a glob claims every name that glob matches.
GLOB_RULES = [
    {"repository": "{user}/*", "pull": ["users"], "push": ["owner"]},
    {"repository": "*-private/*", "pull": ["group:ops"], "push": ["group:ops"]},
    {"repository": "s?cret/*", "pull": ["group:ops"], "push": ["group:ops"]},
    {"repository": "*", "pull": ["anyone"]},
]


@pytest.mark.parametrize("owner", ["x-private", "sacret"])
def test_a_glob_namespace_is_not_taken_by_an_account_it_matches(tmp_path, owner):
    (tmp_path / "groups").write_text("ops: carol\n")
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=GLOB_RULES)
    add_user(app, owner, "pw")  # as if dropped into htpasswd by hand
    add_user(app, "carol", "pw")
    client = app.test_client()
    name = f"{owner}/db"

    assert (
        start_upload(client, name, token_for(client, owner, f"repository:{name}:push"))
        == 401
    )
    assert (
        start_upload(
            client, name, token_for(client, "carol", f"repository:{name}:push")
        )
        == 202
    )
    assert app.extensions["registry_rules"].claims_namespace(owner)


def test_a_lone_star_claims_no_namespace(tmp_path):
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=GLOB_RULES)
    add_user(app, "dave", "pw")
    client = app.test_client()
    headers = token_for(client, "dave", "repository:dave/app:push")
    assert start_upload(client, "dave/app", headers) == 202
    assert not app.extensions["registry_rules"].claims_namespace("dave")
