"""Accounts end to end: docker login, push, logout; skopeo --creds; POST /token.

These tests start their own gunicorn without anonymous push, with a user made
by the ``registry user add`` command, as an operator would.
"""

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DIRECT,
    REPO_ROOT,
    TIMEOUT,
    Server,
    free_port,
    run,
    serving,
)

USER, PASSWORD = "alice", "correct horse battery staple"


@contextlib.contextmanager
def private_registry(tmp, **settings):
    """Serve, until the block ends, without anonymous push, USER added by the CLI."""
    env = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp / "signing.key"),
        "REGISTRY_HTPASSWD_FILE": str(tmp / "htpasswd"),
        "REGISTRY_GROUPS_FILE": str(tmp / "groups"),
        "REGISTRY_LOGIN_FAILURES_FILE": str(tmp / "login-failures.sqlite"),
        "REGISTRY_ANONYMOUS_PUSH": "false",
        **settings,
    }
    server = Server(free_port(), tmp / "storage", env)
    add_user = [sys.executable, "-m", "flask", "--app", "wsgi", "registry", "user"]
    add_user += ["add", USER, "--password-stdin"]
    run(add_user, cwd=REPO_ROOT, env=env, input=PASSWORD + "\n")
    with serving(server, tmp, "--bind", server.host):
        yield server


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    """A registry where only signed-in users push; yields it and its log file."""
    tmp = tmp_path_factory.mktemp("private-registry")
    with private_registry(tmp) as server:
        yield server, tmp / "gunicorn.log"


def attempt(dockerd, *args, stdin=None):
    """Run `docker ARGS`, returning (exit code, stdout and stderr) even on failure."""
    done = subprocess.run(
        [dockerd.binary, "--host", dockerd.host, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dockerd.env,
    )
    return done.returncode, done.stdout + done.stderr


def login(dockerd, server):
    """`docker login` to the server as USER, the password on stdin."""
    args = ["login", server.host, "--username", USER, "--password-stdin"]
    return attempt(dockerd, *args, stdin=PASSWORD)


def refused(output):
    return "denied" in output.lower() or "unauthorized" in output.lower()


def test_docker_login_push_logout_then_anonymous_push_is_refused(
    private_server, dockerd, busybox_image
):
    server, _ = private_server
    image = f"{server.host}/{USER}/hello:v1"
    dockerd.run("tag", busybox_image.name, image)

    code, output = attempt(dockerd, "push", image)
    assert code != 0 and refused(output), output

    code, output = login(dockerd, server)
    assert code == 0 and "Login Succeeded" in output, output
    dockerd.run("push", image)
    dockerd.run("logout", server.host)

    dockerd.run("tag", busybox_image.name, f"{server.host}/{USER}/hello:v2")
    code, output = attempt(dockerd, "push", f"{server.host}/{USER}/hello:v2")
    assert code != 0 and refused(output), output

    dockerd.run("rmi", image)
    dockerd.run("pull", image)
    line = dockerd.run("run", "--rm", "--network", "none", image).strip()
    assert line == busybox_image.line


def test_docker_keeps_a_refresh_token_not_the_password(private_server, dockerd):
    server, _ = private_server
    code, output = login(dockerd, server)
    try:
        config = (Path(dockerd.env["DOCKER_CONFIG"]) / "config.json").read_text()
    finally:
        dockerd.run("logout", server.host)
    assert code == 0, output
    assert json.loads(config)["auths"][server.host].get("identitytoken")
    assert PASSWORD not in config


def test_skopeo_pushes_with_creds_and_is_refused_without(
    private_server, dockerd, busybox_image, skopeo, tmp_path
):
    server, _ = private_server
    archive = tmp_path / "img.tar"
    dockerd.run("save", "--output", str(archive), busybox_image.name)
    target = f"docker://{server.host}/{USER}/skopeo:v1"

    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
        f"docker-archive:{archive}", target,
    )  # fmt: skip
    done = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
         f"docker-archive:{archive}", f"docker://{server.host}/{USER}/skopeo:v2"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip

    assert done.returncode != 0 and refused(done.stderr), done.stderr
    inspected = skopeo("inspect", "--tls-verify=false", "--creds",
                       f"{USER}:{PASSWORD}", target)  # fmt: skip
    assert json.loads(inspected)["Name"].endswith(f"{USER}/skopeo")


def post_form(server, path, form):
    """POST a form to the server; return (status, parsed JSON body)."""
    request = urllib.request.Request(
        server.url + path, data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        with DIRECT.open(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_containerd_style_oauth_token_opens_an_upload(private_server):
    server, _ = private_server
    scope = f"repository:{USER}/oauth:pull,push"
    form = {
        "grant_type": "password",
        "username": USER,
        "password": PASSWORD,
        "service": "registry",
        "client_id": "containerd-client",
        "scope": scope,
        "access_type": "offline",
    }
    status, body = post_form(server, "/token", form)
    assert status == 200 and body["scope"] == scope

    refreshed = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    status, body = post_form(server, "/token", {**form, **refreshed})
    assert status == 200
    upload = urllib.request.Request(
        f"{server.url}/v2/{USER}/oauth/blobs/uploads/",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        method="POST",
    )
    with DIRECT.open(upload, timeout=30) as response:
        assert response.status == 202


def test_wrong_password_gets_401_with_a_json_body(private_server):
    server, _ = private_server
    form = {"grant_type": "password", "username": USER, "password": "wrong"}
    status, body = post_form(server, "/token", {**form, "service": "registry"})
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"


def test_the_server_log_holds_no_password_or_token(private_server):
    server, log = private_server
    form = {"grant_type": "password", "username": USER, "password": PASSWORD}
    status, body = post_form(server, "/token", {**form, "service": "registry"})
    request = urllib.request.Request(
        f"{server.url}/v2/",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    with DIRECT.open(request, timeout=30) as response:
        assert response.status == 200
    text = log.read_text()
    assert PASSWORD not in text and body["access_token"] not in text
    assert "/token" in text


def test_the_real_server_limits_failed_logins(tmp_path):
    with private_registry(tmp_path, REGISTRY_LOGIN_MAX_FAILURES="3") as server:
        form = {"grant_type": "password", "username": USER, "password": "wrong"}
        statuses = [post_form(server, "/token", form)[0] for _ in range(6)]
        status, body = post_form(server, "/token", {**form, "password": PASSWORD})
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429, 429]
    assert status == 429 and body["errors"][0]["code"] == "TOOMANYREQUESTS"
