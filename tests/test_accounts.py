"""Accounts: the htpasswd file, groups, and the ``registry user`` commands."""

import json
import logging
import threading

import bcrypt
import pytest

from app.auth import accounts as accounts_module
from tests.accounts_kit import TEST_ROUNDS, add_user, basic, make_app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def accounts(app):
    return app.extensions["registry_accounts"]


def invoke(runner, *args, password=None):
    """Run ``flask registry user ARGS``, feeding a password on stdin if given."""
    stdin = None if password is None else password + "\n"
    return runner.invoke(args=["registry", "user", *args], input=stdin)


def test_user_add_writes_a_bcrypt_hash_readable_by_owner_only(app, tmp_path):
    result = invoke(
        app.test_cli_runner(),
        "add",
        "alice",
        "--password-stdin",
        password="s3cret-long",
    )
    htpasswd = tmp_path / "htpasswd"
    assert result.exit_code == 0, result.output
    assert htpasswd.stat().st_mode & 0o777 == 0o600
    name, hashed = htpasswd.read_text().strip().split(":", 1)
    assert name == "alice" and hashed.startswith("$2y$")
    assert "s3cret-long" not in htpasswd.read_text()


def test_user_add_from_a_prompt_asks_twice(app, accounts):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["registry", "user", "add", "bob"], input="pw1-long\npw1-long\n"
    )
    assert result.exit_code == 0, result.output
    assert accounts.authenticate("bob", "pw1-long").name == "bob"
    assert "pw1-long" not in result.output


def test_right_password_signs_in_and_wrong_ones_do_not(accounts):
    accounts.set_password("alice", "right")
    assert accounts.authenticate("alice", "right").name == "alice"
    assert accounts.authenticate("alice", "wrong") is None
    assert accounts.authenticate("nobody", "right") is None


def test_an_unknown_user_still_costs_a_bcrypt_check(accounts, monkeypatch):
    accounts.set_password("alice", "right")
    checks = []
    real_check = bcrypt.checkpw
    monkeypatch.setattr(
        accounts_module.bcrypt,
        "checkpw",
        lambda *args: checks.append(args[1]) or real_check(*args),
    )
    assert accounts.authenticate("nobody", "right") is None
    assert len(checks) == 1 and checks[0].startswith(f"$2b${TEST_ROUNDS:02d}$".encode())


def test_apache_htpasswd_files_can_be_dropped_in(accounts, tmp_path):
    hashed = bcrypt.hashpw(b"apache", bcrypt.gensalt(5)).replace(b"$2b$", b"$2y$", 1)
    (tmp_path / "htpasswd").write_text(f"carol:{hashed.decode()}\n")
    assert accounts.authenticate("carol", "apache").name == "carol"


def test_users_written_by_another_process_are_seen_without_restart(app, tmp_path):
    other = make_app(tmp_path)
    assert app.extensions["registry_accounts"].find("dave") is None
    add_user(other, "dave", "pw")
    assert app.extensions["registry_accounts"].authenticate("dave", "pw").name == "dave"


def test_passwd_changes_the_password(app, accounts):
    accounts.set_password("alice", "old")
    result = invoke(
        app.test_cli_runner(),
        "passwd",
        "alice",
        "--password-stdin",
        password="new-long",
    )
    assert result.exit_code == 0, result.output
    assert accounts.authenticate("alice", "old") is None
    assert accounts.authenticate("alice", "new-long").name == "alice"


def test_remove_deletes_the_user(app, accounts):
    accounts.set_password("alice", "pw")
    accounts.set_password("bob", "pw")
    result = invoke(app.test_cli_runner(), "remove", "alice")
    assert result.exit_code == 0, result.output
    assert accounts.list_names() == ["bob"]


@pytest.mark.parametrize(
    "args",
    [
        ("add", "alice", "--password-stdin"),
        ("passwd", "nobody", "--password-stdin"),
        ("remove", "nobody"),
    ],
)
def test_commands_on_the_wrong_user_fail_and_change_nothing(
    app, accounts, tmp_path, args
):
    accounts.set_password("alice", "pw")
    before = (tmp_path / "htpasswd").read_bytes()
    result = invoke(app.test_cli_runner(), *args, password="other-long")
    assert result.exit_code != 0
    assert (tmp_path / "htpasswd").read_bytes() == before


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("Alice", "pw-long-enough"),
        ("al:ice", "pw-long-enough"),
        ("al ice", "pw-long-enough"),
        ("alice-", "pw-long-enough"),
        ("a" * 65, "pw-long-enough"),
        # Words of the rules, and the log's names for no account and the CLI.
        ("anyone", "pw-long-enough"),
        ("anonymous", "pw-long-enough"),
        ("users", "pw-long-enough"),
        ("owner", "pw-long-enough"),
        ("cli", "pw-long-enough"),
        ("alice", ""),
        ("alice", "x" * 73),
    ],
)
def test_bad_names_and_passwords_are_refused_with_one_line(
    app, tmp_path, name, password
):
    result = invoke(
        app.test_cli_runner(), "add", name, "--password-stdin", password=password
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (tmp_path / "htpasswd").exists()


@pytest.mark.parametrize("command", ["add", "passwd"])
def test_a_password_shorter_than_the_minimum_is_refused(tmp_path, command):
    app = make_app(tmp_path, REGISTRY_PASSWORD_MIN_LENGTH=10)
    if command == "passwd":
        add_user(app, "alice", "old password")
    result = invoke(
        app.test_cli_runner(),
        command,
        "alice",
        "--password-stdin",
        password="123456789",
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: the password is shorter than 10 characters "
        "(REGISTRY_PASSWORD_MIN_LENGTH)"
    ]
    accounts = app.extensions["registry_accounts"]
    assert accounts.authenticate("alice", "123456789") is None


def test_list_shows_users_with_their_groups(app, accounts, tmp_path):
    accounts.set_password("alice", "pw")
    accounts.set_password("bob", "pw")
    (tmp_path / "groups").write_text("# teams\ndev: alice bob\nops: alice  # on call\n")
    result = invoke(app.test_cli_runner(), "list", "--json")
    assert json.loads(result.output) == [
        {"name": "alice", "groups": ["dev", "ops"]},
        {"name": "bob", "groups": ["dev"]},
    ]


def test_plain_list_prints_one_user_a_line(app, accounts):
    accounts.set_password("alice", "pw")
    result = invoke(app.test_cli_runner(), "list")
    assert result.output == "alice\n"


def test_passwords_never_reach_the_log(app, accounts, caplog):
    accounts.set_password("alice", "hunter2-secret")
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        client.get("/token", headers=basic("alice", "hunter2-secret"))
        client.get("/token", headers=basic("alice", "wrong-secret"))
    assert caplog.records
    assert "secret" not in caplog.text


def test_concurrent_writers_lose_no_user(tmp_path):
    writers = [make_app(tmp_path).extensions["registry_accounts"] for _ in range(4)]
    threads = [
        threading.Thread(target=writer.set_password, args=(f"user{index}", "pw"))
        for index, writer in enumerate(writers * 3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(writers[0].list_names()) == sorted(f"user{n}" for n in range(12))
