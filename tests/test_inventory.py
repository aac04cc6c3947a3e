"""`flask registry ls / inspect / rm / du / export` and the same in flask shell."""

import json

import pytest

from app.ui.inventory import human_size
from tests.conftest import seed_image


@pytest.fixture
def seeded(storage):
    """Two repositories sharing one image, and a second, bigger tag."""
    first = seed_image(storage, "hello", "v1")
    second = seed_image(storage, "hello", "v2", layers=(b"x" * 3000,))
    seed_image(storage, "other/copy", "latest")
    return {"v1": first, "v2": second}


def invoke(runner, *args):
    return runner.invoke(args=["registry", *args])


def image_size(image):
    return (
        len(image["manifest"]) + len(image["config"]) + sum(map(len, image["layers"]))
    )


def test_ls_lists_repositories_with_tag_counts_and_human_sizes(runner, seeded):
    result = invoke(runner, "ls")

    lines = result.output.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAGS", "MANIFESTS", "SIZE"]
    size = (
        image_size(seeded["v1"])
        + image_size(seeded["v2"])
        - len(seeded["v1"]["config"])
    )
    assert lines[1].split() == ["hello", "2", "2", *human_size(size).split()]


def test_ls_json_gives_sizes_in_bytes(runner, seeded):
    result = invoke(runner, "ls", "hello", "--json")

    tags = json.loads(result.output)
    assert [tag["tag"] for tag in tags] == ["v1", "v2"]
    assert tags[1]["size"] == image_size(seeded["v2"])


def test_ls_of_an_unknown_repository_is_one_line_and_fails(runner, seeded):
    result = invoke(runner, "ls", "absent")

    assert result.exit_code == 1
    assert result.output == "Error: no repository named absent\n"


def test_inspect_shows_config_and_layers(runner, seeded):
    result = invoke(runner, "inspect", "hello:v1")

    details = json.loads(result.output)
    assert details["digest"] == str(seeded["v1"]["digest"])
    assert details["config"]["architecture"] == "amd64"
    assert [layer["size"] for layer in details["layers"]] == [9, 9]


def test_inspect_and_ls_name_fields_alike(runner, seeded):
    listed = json.loads(invoke(runner, "ls", "hello", "--json").output)[0]
    details = json.loads(invoke(runner, "inspect", "hello:v1").output)

    assert details["media_type"] == listed["media_type"]
    keys = {*details, *details["config"], *details["layers"][0]}
    assert not {key for key in keys if any(c.isupper() for c in key)}


def test_du_counts_one_blob_in_the_singular(runner, storage):
    seed_image(storage, "hello", "v1", layers=())
    storage.delete_blob(storage.resolve_tag("hello", "v1"))

    lines = invoke(runner, "du").output.splitlines()

    assert lines[0].endswith(" in 1 blob")


def test_rm_of_a_tag_keeps_the_manifest(runner, storage, seeded):
    result = invoke(runner, "rm", "hello:v2")

    assert result.output == "removed hello:v2\n"
    assert storage.list_tags("hello") == ["v1"]
    assert storage.has_manifest("hello", seeded["v2"]["digest"])


def test_rm_of_a_digest_removes_the_manifest_and_its_tags(runner, storage, seeded):
    digest = seeded["v1"]["digest"]

    invoke(runner, "rm", f"hello@{digest}")

    assert storage.list_tags("hello") == ["v2"]
    assert not storage.has_manifest("hello", digest)


@pytest.mark.parametrize(
    "reference, message",
    [
        ("hello:absent", "hello:absent is not in the registry"),
        ("hello@sha256:1234", "provided digest is not valid"),
        ("UPPER:v1", "invalid repository name"),
    ],
)
def test_rm_refuses_a_bad_reference_in_one_line(
    runner, storage, seeded, reference, message
):
    result = invoke(runner, "rm", reference)

    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output
    assert storage.list_tags("hello") == ["v1", "v2"]


def test_du_tells_shared_and_unique_bytes(runner, seeded):
    result = invoke(runner, "du", "--json")

    usage = json.loads(result.output)
    by_name = {entry["name"]: entry for entry in usage["repositories"]}
    assert by_name["other/copy"] == {
        "name": "other/copy",
        "size": image_size(seeded["v1"]),
        "shared": image_size(seeded["v1"]),
        "unique": 0,
    }
    assert by_name["hello"]["unique"] == image_size(seeded["v2"]) - len(
        seeded["v2"]["config"]
    )


def test_du_counts_blobs_no_manifest_references(runner, storage, seeded):
    storage.write_blob([b"left over"])

    result = invoke(runner, "du")

    assert "referenced by no manifest: 9 B in 1 blob" in result.output.splitlines()
    assert result.output.splitlines()[3].split() == [
        "REPOSITORY", "SIZE", "SHARED", "UNIQUE"
    ]  # fmt: skip


def test_export_command_prints_what_it_wrote(runner, seeded, tmp_path):
    target = tmp_path / "hello.tar"

    result = invoke(runner, "export", "hello:v1", str(target))

    assert result.output == f"hello:v1 {seeded['v1']['digest']} {target}\n"
    assert target.is_file()


def test_export_command_fails_in_one_line(runner, seeded, tmp_path):
    result = invoke(runner, "export", "hello:absent", str(tmp_path / "x.tar"))

    assert result.exit_code == 1
    assert result.output == "Error: hello:absent is not in the registry\n"


def test_flask_shell_offers_the_same_functions(app, seeded):
    with app.app_context():
        namespace = app.make_shell_context()

    listing = namespace["list_repositories"](namespace["storage"])
    assert [repository.name for repository in listing] == ["hello", "other/copy"]
    assert {"inspect_image", "remove_image", "disk_usage", "export_image"} <= set(
        namespace
    )
