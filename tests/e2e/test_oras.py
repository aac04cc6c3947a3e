"""oras pushes artifacts that refer to an image, lists them, and pulls them back.

The oras Python package has no way to give a manifest an ``artifactType``, so
that artifact's manifest is written here and put with oras's own
``upload_blob`` and ``upload_manifest``; everything else is oras as it comes.
"""

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import secrets
import urllib.parse
from pathlib import Path

import pytest

from tests.e2e.conftest import missing

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
TITLE = "org.opencontainers.image.title"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"
SIGNATURE_LAYER = "application/vnd.example.signature.v1+json"
SBOM_CONFIG = "application/vnd.example.sbom.config.v1+json"


@pytest.fixture(scope="module")
def oras_modules():
    """Import the oras package, or skip (fail in CI) without it."""
    if importlib.util.find_spec("oras") is None:
        missing("the oras Python package is not installed")
    for module in ("oras.oci", "oras.provider"):
        importlib.import_module(module)
    return importlib.import_module("oras")


@pytest.fixture
def repository(registry_server):
    """A repository of its own for each test, on the server."""
    return f"{registry_server.host}/e2e/artifacts-{secrets.token_hex(4)}"


@pytest.fixture
def registry(registry_server, repository, oras_modules):
    """An oras client of the server over plain HTTP, ignoring proxy settings.

    oras answers a 401 by sending again the token it already holds, so a
    token granting pull and push on the test's repository is set beforehand.
    """
    client = oras_modules.provider.Registry(registry_server.host, insecure=True)
    client.session.trust_env = False
    name = repository.removeprefix(f"{registry_server.host}/")
    client.auth.set_token_auth(push_token(registry_server, name))
    return client


def push_token(server, name):
    """A token from the server's /token endpoint granting pull and push on name."""
    query = {"service": "registry", "scope": f"repository:{name}:pull,push"}
    with server.open(f"/token?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)["token"]


@pytest.fixture
def image(registry, repository, tmp_path, oras_modules):
    """Push a small image manifest with oras; return its descriptor as a Subject."""
    config = {"architecture": "amd64", "os": "linux"}
    layer = tmp_path / "hello.txt"
    layer.write_text("an image for artifacts to refer to\n")
    oras_push(registry, f"{repository}:image", layer, (config, OCI_CONFIG))
    return manifest_subject(registry, f"{repository}:image", oras_modules)


def oras_push(registry, target, path, config, **options):
    """Push one file with oras, with ``config`` (document, media type) beside it."""
    document, media_type = config
    config_path = path.with_name(f"{path.stem}-config.json")
    config_path.write_text(json.dumps(document))
    manifest_config = f"{config_path}:{media_type}"
    registry.push(
        target, files=[str(path)], manifest_config=manifest_config,
        disable_path_validation=True, quiet=True, **options,
    )  # fmt: skip


def manifest_subject(registry, target, oras_modules):
    """Describe a stored manifest by the bytes and digest the server serves."""
    container = registry.get_container(target)
    url = f"{registry.prefix}://{container.manifest_url()}"
    response = registry.do_request(url, headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text
    digest = response.headers["Docker-Content-Digest"]
    return oras_modules.oci.Subject(OCI_MANIFEST, digest, len(response.content))


def list_referrers(registry, repository, digest, artifact_type=None):
    """GET the referrers of ``digest``; return the response."""
    container = registry.get_container(f"{repository}:unused")
    url = f"{registry.prefix}://{container.registry}/v2/{container.api_prefix}"
    url += f"/referrers/{digest}"
    if artifact_type:
        url += "?" + urllib.parse.urlencode({"artifactType": artifact_type})
    response = registry.do_request(url)
    assert response.status_code == 200, response.text
    return response


def push_signature(registry, repository, subject, signature, tmp_path):
    """Push an artifact with artifactType, empty config and subject; its digest."""
    container = registry.get_container(f"{repository}:signature")
    empty = tmp_path / "empty.json"
    empty.write_bytes(EMPTY_JSON)
    config = descriptor_of(OCI_EMPTY, EMPTY_JSON)
    layer = descriptor_of(SIGNATURE_LAYER, signature.read_bytes())
    layer["annotations"] = {TITLE: signature.name}
    for path, descriptor in ((empty, config), (signature, layer)):
        response = registry.upload_blob(str(path), container, descriptor)
        assert response.status_code in (200, 201), response.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": config,
        "layers": [layer],
        "subject": dataclasses.asdict(subject),
    }
    response = registry.upload_manifest(manifest, container)
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject.digest
    return response.headers["Docker-Content-Digest"]


def descriptor_of(media_type, data):
    """A descriptor of ``data`` as oras expects one: media type, digest, size."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def test_an_artifact_with_artifact_type_is_listed_and_pulled_back(
    registry, repository, image, tmp_path
):
    signature = tmp_path / "signature.json"
    signature.write_text(json.dumps({"signed": image.digest}))

    digest = push_signature(registry, repository, image, signature, tmp_path)

    referrers = list_referrers(registry, repository, image.digest).json()
    [listed] = referrers["manifests"]
    assert (listed["digest"], listed["artifactType"]) == (digest, SIGNATURE_TYPE)
    [pulled] = registry.pull(f"{repository}@{digest}", outdir=str(tmp_path / "out"))
    assert Path(pulled).read_bytes() == signature.read_bytes()


def test_oras_push_with_a_subject_is_listed_by_its_config_type(
    registry, repository, image, tmp_path, oras_modules
):
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": ["busybox"]}))
    target = f"{repository}:sbom"

    oras_push(registry, target, sbom, ({}, SBOM_CONFIG), subject=image, do_chunked=True)

    sbom_subject = manifest_subject(registry, target, oras_modules)
    response = list_referrers(registry, repository, image.digest, SBOM_CONFIG)
    [listed] = response.json()["manifests"]
    assert (listed["digest"], listed["artifactType"]) == (
        sbom_subject.digest,
        SBOM_CONFIG,
    )
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    [pulled] = registry.pull(target, outdir=str(tmp_path / "out"))
    assert Path(pulled).read_bytes() == sbom.read_bytes()


def test_referrers_of_an_image_without_any_is_an_empty_index(
    registry, repository, image
):
    response = list_referrers(registry, repository, image.digest)

    assert response.json()["manifests"] == []
    assert response.headers["Content-Type"].startswith(
        "application/vnd.oci.image.index.v1+json"
    )
