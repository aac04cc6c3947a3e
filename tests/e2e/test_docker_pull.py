"""docker and skopeo pull, from the real server, images imported with the CLI."""

import json
import urllib.parse

import pytest

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def save_and_forget(dockerd, image, archive):
    """`docker save` image to archive, then remove it from the daemon."""
    dockerd.run("save", "--output", str(archive), image.name)
    dockerd.run("rmi", image.name)
    return archive


def pull_and_run(dockerd, reference):
    """Pull reference, run it without a network, and return what it printed."""
    dockerd.run("pull", reference)
    return dockerd.run("run", "--rm", "--network", "none", reference).strip()


def served_digest(server, name, tag):
    """The Docker-Content-Digest the server answers for GET of name:tag."""
    query = {"service": "registry", "scope": f"repository:{name}:pull"}
    with server.open(f"/token?{urllib.parse.urlencode(query)}") as response:
        token = json.load(response)["token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES}
    with server.open(f"/v2/{name}/manifests/{tag}", headers) as response:
        return response.headers["Docker-Content-Digest"]


@pytest.fixture
def hello_world(registry_server, dockerd, busybox_image, tmp_path):
    """Import the busybox image, saved by docker, as hello-world:latest."""
    archive = save_and_forget(dockerd, busybox_image, tmp_path / "img.tar")
    registry_server.flask("registry", "import", str(archive), "hello-world:latest")
    return f"{registry_server.host}/hello-world:latest"


def test_docker_pulls_and_runs_an_imported_image(dockerd, busybox_image, hello_world):
    assert pull_and_run(dockerd, hello_world) == busybox_image.line


def test_skopeo_gets_the_manifest_the_server_names(
    registry_server, hello_world, skopeo, tmp_path
):
    layout = tmp_path / "layout"

    # --preserve-digests: store the manifest as served, never converted to OCI.
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false",
        f"docker://{hello_world}", f"oci:{layout}:latest",
    )  # fmt: skip

    index = json.loads((layout / "index.json").read_text())
    [written] = index["manifests"]
    served = served_digest(registry_server, "hello-world", "latest")
    assert written["digest"] == served


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_docker_pulls_an_imported_oci_layout(
    registry_server, dockerd, busybox_image, skopeo, tmp_path, transport
):
    archive = save_and_forget(dockerd, busybox_image, tmp_path / "img.tar")
    layout = tmp_path / ("layout" if transport == "oci" else "layout.tar")
    skopeo("copy", f"docker-archive:{archive}", f"{transport}:{layout}:v1")
    name = f"hello-{transport}:v1"

    registry_server.flask("registry", "import", str(layout), name)

    line = pull_and_run(dockerd, f"{registry_server.host}/{name}")
    assert line == busybox_image.line
