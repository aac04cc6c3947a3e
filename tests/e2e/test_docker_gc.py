"""Garbage collection against the real server, with docker pushing and pulling."""

import json
import urllib.parse
import urllib.request

from tests.e2e.conftest import DIRECT

NAME = "gc-busybox"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def token(server, actions):
    """A token for ``actions`` on NAME from the server's own /token."""
    query = {"service": "registry", "scope": f"repository:{NAME}:{actions}"}
    with server.open(f"/token?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)["token"]


def pushed_digests(server, tag):
    """The digests of the manifest ``tag`` points to, its config and its layers."""
    headers = {
        "Authorization": f"Bearer {token(server, 'pull')}",
        "Accept": DOCKER_MANIFEST,
    }
    with server.open(f"/v2/{NAME}/manifests/{tag}", headers) as response:
        manifest = json.load(response)
        digest = response.headers["Docker-Content-Digest"]
    layers = [layer["digest"] for layer in manifest["layers"]]
    return digest, manifest["config"]["digest"], layers


def delete_manifest(server, digest):
    """Delete a manifest by digest, and with it its tags."""
    headers = {"Authorization": f"Bearer {token(server, 'delete')}"}
    request = urllib.request.Request(
        f"{server.url}/v2/{NAME}/manifests/{digest}", method="DELETE", headers=headers
    )
    with DIRECT.open(request, timeout=30) as response:
        assert response.status == 202


def collect(server, *flags):
    """Run `registry gc --json` with no grace period; return the freed blobs."""
    output = server.flask("registry", "gc", "--grace", "0", "--json", *flags)
    return {blob["digest"] for blob in json.loads(output)["blobs"]}


def test_collected_image_pushes_again_and_pulls_whole(
    registry_server, dockerd, busybox_image
):
    reference = f"{registry_server.host}/{NAME}:v1"
    dockerd.run("tag", busybox_image.name, reference)
    dockerd.run("push", reference)
    manifest, config, layers = pushed_digests(registry_server, "v1")

    delete_manifest(registry_server, manifest)
    assert {manifest, config} <= collect(registry_server)

    dockerd.run("push", reference)
    assert collect(registry_server, "--untagged").isdisjoint(
        {manifest, config, *layers}
    )
    dockerd.run("rmi", reference, busybox_image.name)
    dockerd.run("pull", reference)
    output = dockerd.run("run", "--rm", "--network", "none", reference)
    assert output.strip() == busybox_image.line
