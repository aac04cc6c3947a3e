"""Repositories emptied by deletes: gone from listings, their folders from the tree."""

import os
import time

import pytest

from app.gc import collect_garbage
from tests.conftest import bearer, get_token, seed_image

NAME = "team/app"
KEPT = "team/kept"
HOUR = 3600


@pytest.fixture
def emptied(client, storage):
    """A repository whose only manifest was deleted, beside one still holding one."""
    image = seed_image(storage, NAME, "v1")
    seed_image(storage, KEPT, "v1")
    url = f"/v2/{NAME}/manifests/{image['digest']}"
    response = client.delete(url, headers=bearer(client, NAME, "delete"))
    assert response.status_code == 202
    return image


def age_tree(storage, seconds=2 * HOUR):
    """Make every file and folder of the tree look ``seconds`` old."""
    then = time.time() - seconds
    for folder, _subfolders, files in os.walk(storage.root):
        for entry in [folder, *(os.path.join(folder, name) for name in files)]:
            os.utime(entry, (then, then))


def repository_folder(storage, name=NAME):
    return os.path.join(storage.root, "repos", name)


def test_catalog_leaves_out_an_emptied_repository(client, emptied):
    token = get_token(client, "registry:catalog:*")
    response = client.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
    assert response.json["repositories"] == [KEPT]


def test_ls_du_and_the_ui_leave_out_an_emptied_repository(runner, client, emptied):
    listed = runner.invoke(args=["registry", "ls"]).output.splitlines()
    usage = runner.invoke(args=["registry", "du"]).output
    page = client.get("/ui/?format=json").json["repositories"]
    assert [line.split()[0] for line in listed[1:]] == [KEPT]
    assert NAME not in usage and KEPT in usage
    assert [entry["name"] for entry in page] == [KEPT]


def test_gc_removes_the_folders_of_an_emptied_repository(storage, emptied):
    result = collect_garbage(storage, grace=0, untagged=True)
    assert not os.path.exists(repository_folder(storage))
    assert os.path.isdir(repository_folder(storage, KEPT)) and result.folders > 0


def test_gc_takes_a_removed_repository_out_of_the_catalog_folder(storage, emptied):
    collect_garbage(storage, grace=0, untagged=True)
    assert os.listdir(os.path.join(storage.root, "catalog")) == ["team+kept"]
    seed_image(storage, NAME, "v2")
    assert storage.list_repositories() == [NAME, KEPT]


def test_gc_keeps_empty_folders_younger_than_the_grace(storage, emptied):
    age_tree(storage)
    os.utime(os.path.join(repository_folder(storage), "_manifests", "sha256"))
    collect_garbage(storage, grace=HOUR)
    assert os.path.isdir(os.path.join(repository_folder(storage), "_manifests"))


def test_a_write_survives_its_folder_being_removed_before_the_rename(
    storage, emptied, monkeypatch
):
    """A collection may remove an empty folder between a push's makedirs and rename."""
    tags = os.path.join(repository_folder(storage), "_tags")
    os.makedirs(tags, exist_ok=True)
    real_replace = os.replace
    removed = []

    def replace_after_a_collection(source, target):
        if not removed and os.path.dirname(target) == tags:
            os.rmdir(tags)
            removed.append(tags)
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_after_a_collection)
    storage.tag_manifest(NAME, "v2", emptied["digest"])
    assert removed == [tags]
    assert storage.resolve_tag(NAME, "v2") == emptied["digest"]


def test_rm_of_a_repository_asks_and_changes_nothing_on_no(runner, storage):
    seed_image(storage, NAME, "v1")
    result = runner.invoke(args=["registry", "rm", NAME], input="n\n")
    assert result.exit_code == 1
    assert "Remove repository team/app (1 tag, 1 manifest)?" in result.output
    assert storage.list_tags(NAME) == ["v1"]


def test_rm_of_a_repository_with_yes_removes_every_tag_and_manifest(runner, storage):
    image = seed_image(storage, NAME, "v1")
    storage.tag_manifest(NAME, "latest", image["digest"])
    seed_image(storage, NAME, "v2", layers=(b"other layer",))
    result = runner.invoke(args=["registry", "rm", "--yes", NAME])
    assert result.output == "removed repository team/app (2 manifests, 3 tags)\n"
    assert storage.list_repositories() == []


def test_rm_of_an_unknown_repository_is_one_line(runner, storage):
    result = runner.invoke(args=["registry", "rm", "--yes", "absent"])
    assert (result.exit_code, result.output) == (
        1,
        "Error: no repository named absent\n",
    )
