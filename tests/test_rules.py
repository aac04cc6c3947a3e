"""Access rules: who may pull, push and delete which repositories, and no leaks."""

import json

import pytest

from app.auth import caller_named
from app.auth.rules import RulesError
from tests.accounts_kit import add_user, basic, make_app, with_token
from tests.conftest import seed_image, sha256
from tests.test_ui import form_token_of

RULES = [
    {
        "repository": "{user}/*",
        "pull": ["users"],
        "push": ["owner"],
        "delete": ["owner"],
    },
    {"repository": "secret/*", "pull": ["group:ops"], "push": ["group:ops"]},
    {"repository": "team/*", "pull": ["anyone"], "push": ["group:dev"]},
    {"repository": "alice/*", "pull": ["anyone"], "delete": ["user:alice"]},
]


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=RULES)
    for name in ("alice", "bob", "carol"):
        add_user(app, name, "pw")
    (tmp_path / "groups").write_text("dev: alice\nops: carol\n")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def actions(client, user, repository):
    """Return the actions a token request grants ``user`` (None: anonymous)."""
    headers = basic(user, "pw") if user else {}
    scope = f"repository:{repository}:pull,push,delete"
    response = client.get("/token", query_string={"scope": scope}, headers=headers)
    grant = client.application.extensions["registry_tokens"].verify(
        response.json["token"]
    )
    return [action for entry in grant["access"] for action in entry["actions"]]


@pytest.mark.parametrize(
    ("user", "repository", "expected"),
    [
        (None, "team/app", ["pull"]),
        ("bob", "team/app", ["pull"]),
        ("alice", "team/app", ["pull", "push"]),
        (None, "secret/db", []),
        ("alice", "secret/db", []),
        ("carol", "secret/db", ["pull", "push"]),
        ("alice", "alice/tools", ["pull", "delete"]),
        ("bob", "alice/tools", ["pull"]),
        ("bob", "bob/deep/tools", ["pull", "push", "delete"]),
        ("carol", "carol/app", ["pull", "push", "delete"]),
        ("bob", "carol/app", ["pull"]),
        (None, "carol/app", []),
        ("bob", "dave/app", ["pull"]),
        (None, "dave/app", []),
        (None, "elsewhere", ["pull"]),
        ("bob", "elsewhere", ["pull", "push", "delete"]),
    ],
)
def test_first_matching_rule_decides(client, user, repository, expected):
    assert actions(client, user, repository) == expected


def test_anonymous_push_setting_still_grants_push_where_no_rule_matches(tmp_path):
    app = make_app(tmp_path, REGISTRY_ANONYMOUS_PUSH=True, REGISTRY_ACCESS_RULES=RULES)
    client = app.test_client()
    assert actions(client, None, "elsewhere") == ["pull", "push", "delete"]
    assert actions(client, None, "secret/db") == []


def test_anonymous_pull_can_be_switched_off_for_the_default_rule(tmp_path):
    app = make_app(tmp_path, REGISTRY_ANONYMOUS_PULL=False)
    add_user(app, "bob", "pw")
    assert actions(app.test_client(), None, "any") == []
    assert actions(app.test_client(), "bob", "any") == ["pull", "push", "delete"]


def test_rules_read_from_a_json_string(tmp_path):
    rules = json.dumps([{"repository": "*", "pull": ["users"]}])
    app = make_app(tmp_path, REGISTRY_ACCESS_RULES=rules)
    assert actions(app.test_client(), None, "any") == []


@pytest.mark.parametrize(
    "rules",
    [
        "not json",
        {"repository": "*"},
        [{"pull": ["anyone"]}],
        [{"repository": "*", "pul": ["anyone"]}],
        [{"repository": "*", "pull": "anyone"}],
        [{"repository": "*", "pull": ["everybody"]}],
        [{"repository": "*", "pull": ["user:"]}],
        [{"repository": "*", "pull": [3]}],
        [{"repository": "team/*", "push": ["owner"]}],
        [{"repository": "home/{user}/*", "push": ["users"]}],
        [{"repository": "{user}-*/*", "push": ["users"]}],
    ],
)
def test_rules_that_do_not_read_stop_the_start_with_a_reason(tmp_path, rules):
    with pytest.raises(RulesError):
        make_app(tmp_path, REGISTRY_ACCESS_RULES=rules)


def pull_answer(client, user, repository, method="get"):
    """Return (status, code, challenge without the name) of a manifest pull."""
    headers = basic(user, "pw") if user else {}
    scope = f"repository:{repository}:pull"
    response = client.get("/token", query_string={"scope": scope}, headers=headers)
    token = response.json["token"]
    path = f"/v2/{repository}/manifests/v1"
    answer = client.open(path, method=method.upper(), headers=with_token(token))
    challenge = answer.headers.get("WWW-Authenticate", "").replace(repository, "NAME")
    code = (
        answer.json["errors"][0]["code"]
        if answer.data.startswith(b'{"errors')
        else None
    )
    return answer.status_code, code, challenge


@pytest.mark.parametrize("user", [None, "alice"])
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_hidden_repository_answers_like_a_missing_one(app, client, user, method):
    seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    hidden = pull_answer(client, user, "secret/db", method)
    missing = pull_answer(client, user, "secret/nothing", method)
    assert hidden == missing
    assert hidden[0] == 401 and 'error="insufficient_scope"' in hidden[2]


def test_hidden_repository_is_readable_by_its_group(app, client):
    seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    assert pull_answer(client, "carol", "secret/db")[0] == 200


def catalog(client, user):
    headers = basic(user, "pw") if user else {}
    response = client.get(
        "/token", query_string={"scope": "registry:catalog:*"}, headers=headers
    )
    listing = client.get("/v2/_catalog", headers=with_token(response.json["token"]))
    return listing.json["repositories"]


def test_catalog_lists_only_what_the_caller_may_pull(app, client):
    storage = app.extensions["registry_storage"]
    for name in ("secret/db", "team/app", "bob/tools"):
        seed_image(storage, name, "v1")
    assert catalog(client, None) == ["team/app"]
    assert catalog(client, "carol") == ["bob/tools", "secret/db", "team/app"]


def mount(client, user, digest, source, target):
    """POST a mount of ``digest`` from ``source`` into ``target`` as ``user``."""
    scopes = [f"repository:{target}:pull,push", f"repository:{source}:pull"]
    response = client.get(
        "/token", query_string={"scope": scopes}, headers=basic(user, "pw")
    )
    return client.post(
        f"/v2/{target}/blobs/uploads/?mount={digest}&from={source}",
        headers=with_token(response.json["token"]),
    )


def test_mounting_needs_pull_on_the_source(app, client):
    seeded = seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    digest = sha256(seeded["config"])
    assert mount(client, "alice", digest, "secret/db", "team/app").status_code == 202
    assert mount(client, "carol", digest, "secret/db", "secret/copy").status_code == 201


def test_mounting_without_a_source_cannot_reach_a_hidden_repository(app, client):
    seeded = seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    scope = "repository:team/app:pull,push"
    response = client.get(
        "/token", query_string={"scope": scope}, headers=basic("alice", "pw")
    )
    digest = sha256(seeded["config"])
    answer = client.post(
        f"/v2/team/app/blobs/uploads/?mount={digest}",
        headers=with_token(response.json["token"]),
    )
    assert answer.status_code == 202


def test_mounting_without_a_source_works_when_nothing_is_hidden(tmp_path):
    app = make_app(tmp_path, REGISTRY_ANONYMOUS_PUSH=True)
    seeded = seed_image(app.extensions["registry_storage"], "a", "v1")
    client = app.test_client()
    response = client.get("/token", query_string={"scope": "repository:b:pull,push"})
    answer = client.post(
        f"/v2/b/blobs/uploads/?mount={sha256(seeded['config'])}",
        headers=with_token(response.json["token"]),
    )
    assert answer.status_code == 201


def test_the_web_ui_signs_accounts_in_and_follows_the_rules(app, client):
    seed_image(app.extensions["registry_storage"], "secret/db", "v1")
    csrf_token = form_token_of(client)
    assert client.get("/ui/?format=json").json["repositories"] == []

    form = {"username": "carol", "password": "pw", "csrf_token": csrf_token}
    assert client.post("/ui/sign-in", data=form).status_code == 303

    listing = client.get("/ui/?format=json").json["repositories"]
    assert [repository["name"] for repository in listing] == ["secret/db"]


NAMES = [
    "team/app", "secret/db", "alice/tools", "bob/deep/tools", "carol/app",
    "dave/app", "elsewhere", "secret", "team", "alice", "x/y/z",
]  # fmt: skip


@pytest.mark.parametrize("pull_setting", [True, False])
@pytest.mark.parametrize("user", [None, "alice", "bob", "carol"])
@pytest.mark.parametrize("action", ["pull", "push", "delete"])
def test_filtering_many_names_agrees_with_asking_for_each(
    tmp_path, pull_setting, user, action
):
    app = make_app(
        tmp_path, REGISTRY_ACCESS_RULES=RULES, REGISTRY_ANONYMOUS_PULL=pull_setting
    )
    (tmp_path / "groups").write_text("dev: alice\nops: carol\n")
    with app.test_request_context():
        rules = app.extensions["registry_rules"]
        caller = caller_named(user)
        one_by_one = [n for n in NAMES if action in rules.allowed_actions(caller, n)]

        assert rules.permitting(caller, action, NAMES) == one_by_one


def test_when_everyone_pulls_everything_the_catalog_is_not_filtered(tmp_path):
    app = make_app(tmp_path, REGISTRY_ANONYMOUS_PULL=True)
    with app.test_request_context():
        rules = app.extensions["registry_rules"]

        assert rules.permitting(caller_named(None), "pull", NAMES) == NAMES
        assert rules.permitting(caller_named(None), "push", NAMES) == []
