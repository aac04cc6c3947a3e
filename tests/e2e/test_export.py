"""Images exported with the CLI, read by docker load and by skopeo."""

import hashlib
import json

import pytest

from tests.e2e.test_docker_pull import save_and_forget


@pytest.fixture
def stored_image(registry_server, dockerd, busybox_image, tmp_path):
    """Import the busybox image as exported:v1; return NAME@DIGEST as stored."""
    archive = save_and_forget(dockerd, busybox_image, tmp_path / "img.tar")
    output = registry_server.flask("registry", "import", str(archive), "exported:v1")
    return "exported@" + output.split()[1]


def test_docker_loads_and_runs_an_exported_tarball(
    registry_server, dockerd, busybox_image, stored_image, tmp_path
):
    target = tmp_path / "exported.tar"

    registry_server.flask("registry", "export", "exported:v1", str(target))
    loaded = dockerd.run("load", "--input", str(target))

    assert "exported:v1" in loaded
    output = dockerd.run("run", "--rm", "--network", "none", "exported:v1")
    assert output.strip() == busybox_image.line
    dockerd.run("rmi", "exported:v1")


@pytest.mark.parametrize(
    "transport, name", [("oci", "layout"), ("oci-archive", "l.tar")]
)
def test_skopeo_reads_an_exported_oci_layout(
    registry_server, skopeo, stored_image, tmp_path, transport, name
):
    target = tmp_path / name

    output = registry_server.flask(
        "registry", "export", "--format", "oci", "exported:v1", str(target)
    )
    raw = skopeo("inspect", "--raw", f"{transport}:{target}:v1")
    details = json.loads(skopeo("inspect", f"{transport}:{target}:v1"))

    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == output.split()[1]
    stored = json.loads(registry_server.flask("registry", "inspect", stored_image))
    assert details["Layers"] == [layer["digest"] for layer in stored["layers"]]
