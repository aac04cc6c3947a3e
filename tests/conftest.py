"""Fixtures: an app with storage under tmp_path, its client, and a seeded image."""

import hashlib
import json
import os
import socket

import pytest
from flask.testing import FlaskClient

from app import INSTANCE_PATH_VARIABLE, create_app
from app.reference import compute_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.fixture(scope="session", autouse=True)
def private_instance_folder(tmp_path_factory):
    """Point every app, and every server or command a test starts, at a temporary
    instance folder, so nothing a test does reads or writes the checkout's own."""
    folder = tmp_path_factory.mktemp("instance")
    saved = os.environ.get(INSTANCE_PATH_VARIABLE)
    os.environ[INSTANCE_PATH_VARIABLE] = str(folder)
    yield folder
    if saved is None:
        del os.environ[INSTANCE_PATH_VARIABLE]
    else:
        os.environ[INSTANCE_PATH_VARIABLE] = saved


@pytest.fixture
def app(tmp_path):
    """An application whose storage and signing key live under tmp_path."""
    return make_app(tmp_path, REGISTRY_ANONYMOUS_PUSH=True)


def make_app(tmp_path, **settings):
    """Return an application with data under tmp_path and the given settings."""
    return create_app(
        {
            "TESTING": True,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
            "REGISTRY_HTPASSWD_FILE": str(tmp_path / "htpasswd"),
            "REGISTRY_GROUPS_FILE": str(tmp_path / "groups"),
            "REGISTRY_LOGIN_FAILURES_FILE": str(tmp_path / "login-failures.sqlite"),
            "REGISTRY_UI_SESSIONS_DIR": str(tmp_path / "ui-sessions"),
            **settings,
        }
    )


class ClosingClient(FlaskClient):
    """A test client that reads and closes every response, as a server would."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = ClosingClient
    return app.test_client()


@pytest.fixture
def connection():
    """A connected pair of sockets: (server side, client side)."""
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def storage(app):
    return app.extensions["registry_storage"]


@pytest.fixture(params=["openat2", "walk"])
def link_check(request, storage):
    """Run a test with the kernel refusing links out of the root (openat2,
    where the kernel has it) and with the registry walking paths for links."""
    if request.param == "walk":
        storage._beneath.descriptor = None
    return request.param


def get_token(client, *scopes):
    """Return a token for ``scopes`` from the registry's own /token endpoint."""
    response = client.get("/token", query_string={"scope": list(scopes)})
    assert response.status_code == 200, response.data
    return response.json["token"]


def bearer(client, name, actions="pull"):
    """Return headers carrying a token for ``actions`` on repository ``name``."""
    token = get_token(client, f"repository:{name}:{actions}")
    return {"Authorization": f"Bearer {token}"}


def descriptor(media_type, data):
    return {
        "mediaType": media_type,
        "size": len(data),
        "digest": str(compute_digest(data)),
    }


def seed_image(storage, name, tag, layers=(b"layer one", b"layer two"), config=None):
    """Store a small docker v2 image under ``name:tag``; return its parts."""
    config = json.dumps(config or {"architecture": "amd64", "os": "linux"}).encode()
    for blob in (config, *layers):
        storage.link_blob(name, storage.write_blob([blob]))
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, layer) for layer in layers],
    }
    body = json.dumps(manifest, indent=3).encode()
    digest = storage.put_manifest(name, body, DOCKER_MANIFEST)
    storage.tag_manifest(name, tag, digest)
    return {"manifest": body, "digest": digest, "config": config, "layers": layers}


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()
