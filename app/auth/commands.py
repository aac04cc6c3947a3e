"""``flask --app wsgi registry user ...``: add, change, remove and list accounts."""

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.auth.accounts import AccountError

user = AppGroup("user", help="Manage the accounts in the htpasswd file.")


def get_accounts():
    return current_app.extensions["registry_accounts"]


def read_password(from_stdin):
    """Return a password from standard input's first line, or from a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def store_password(name, password):
    """Set the user's password, turning a refusal into a one-line error."""
    shortest = current_app.config["REGISTRY_PASSWORD_MIN_LENGTH"]
    if len(password) < shortest:
        raise click.ClickException(
            f"the password is shorter than {shortest} characters "
            "(REGISTRY_PASSWORD_MIN_LENGTH)"
        )
    try:
        get_accounts().set_password(name, password)
    except AccountError as error:
        raise click.ClickException(str(error)) from None


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input."
)


@user.command("add")
@click.argument("name")
@password_stdin
def add_user(name, password_stdin):
    """Create the user NAME with a password."""
    if get_accounts().find(name) is not None:
        raise click.ClickException(f"user {name} exists; use `user passwd` instead")
    if current_app.extensions["registry_rules"].claims_namespace(name):
        raise click.ClickException(
            f"{name}/ is a namespace an access rule names; pick another user name"
        )

    store_password(name, read_password(password_stdin))

    click.echo(f"user {name} added")


@user.command("passwd")
@click.argument("name")
@password_stdin
def change_password(name, password_stdin):
    """Change the password of the user NAME."""
    if get_accounts().find(name) is None:
        raise click.ClickException(f"no user {name}")

    store_password(name, read_password(password_stdin))

    click.echo(f"password of {name} changed")


@user.command("remove")
@click.argument("name")
def remove_user(name):
    """Remove the user NAME."""
    if not get_accounts().remove(name):
        raise click.ClickException(f"no user {name}")
    click.echo(f"user {name} removed")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_users(as_json):
    """List the users, with their groups."""
    accounts = get_accounts()
    users = [
        {"name": name, "groups": sorted(accounts.groups_of(name))}
        for name in accounts.list_names()
    ]
    if as_json:
        click.echo(json.dumps(users))
        return
    for entry in users:
        groups = ",".join(entry["groups"])
        click.echo(f"{entry['name']}\t{groups}" if groups else entry["name"])
