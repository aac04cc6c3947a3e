"""Garbage collection around entries the registry did not write.

Whatever stands in the tree where the registry keeps a file (a folder, a FIFO,
a link that loops, dangles or leads out of the root), ``gc`` still collects
the real garbage, leaves what it does not understand where it is, answers
with its summary and exit code 0, and never follows a link out of the root.
"""

import json
import os
import stat
import time

import pytest

from app.reference import compute_digest
from tests.conftest import seed_image
from tests.test_safety import blob_file, replace_with, stored_state

HOUR = 3600
KINDS = ["folder", "fifo", "loop", "dangling link", "link out of the root"]
LINKS = {"loop", "dangling link", "link out of the root"}
# Where the registry keeps a file that garbage collection lists and removes.
PLACES = ["blob", "blob link", "manifest record"]
# What may stand in uploads/ where the registry keeps an upload's folder.
UPLOAD_KINDS = [
    "file",
    "fifo",
    "loop",
    "dangling link",
    "link out of the root",
    "link to a folder in the root",
]
GARBAGE = b"bytes that nothing references"
ODD = compute_digest(b"what stands here was never pushed")
SECRET = b"outside the storage root"
UPLOAD_ID = "0b0d5e1a-9c3e-4f2a-8d6b-5a4c3b2a1f00"


@pytest.fixture
def outside(tmp_path):
    """A folder outside the root, holding a file; links leading out name it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_bytes(SECRET)
    return folder


def age(path, seconds=2 * HOUR):
    """Make one entry look ``seconds`` old, without following a link."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def age_tree(storage, seconds=2 * HOUR):
    """Make every folder and file under the root look ``seconds`` old."""
    for folder, folders, files in os.walk(storage.root):
        for entry in [*folders, *files]:
            age(os.path.join(folder, entry), seconds)
        age(folder, seconds)


def odd_place(storage, place):
    records = os.path.join(storage.root, "repos", "a")
    paths = {
        "blob": blob_file(storage, ODD),
        "blob link": os.path.join(records, "_blobs", "sha256", ODD.hex),
        "manifest record": os.path.join(records, "_manifests", "sha256", ODD.hex),
    }
    return paths[place]


def plant(path, kind, outside):
    """Put ``kind`` at ``path``; ``outside`` is what a link out of the root
    names. A folder planted holds a file of its own."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "link to a folder in the root":
        root = os.path.dirname(os.path.dirname(path))
        os.symlink(os.path.join(root, "repos"), path)
    else:
        replace_with(path, kind, outside)
    if kind == "folder":
        with open(os.path.join(path, "kept"), "wb") as file:
            file.write(b"not the registry's")
    age(path)


def tree_with_garbage(storage):
    """A tagged image, an unreferenced blob linked into the repository, and an
    idle upload; return (image, garbage digest, upload id)."""
    image = seed_image(storage, "a", "latest")
    garbage = storage.write_blob([GARBAGE])
    storage.link_blob("a", garbage)
    upload = storage.create_upload("a")
    age_tree(storage)
    return image, garbage, upload


def image_intact(storage, image):
    manifest = storage.get_manifest("a", image["digest"])
    assert manifest.body == image["manifest"]
    for layer in image["layers"]:
        assert storage.read_blob(compute_digest(layer)) == layer
    assert storage.read_blob(compute_digest(image["config"])) == image["config"]


def sweep_leftovers(storage):
    return [
        name
        for name in os.listdir(os.path.join(storage.root, "tmp"))
        if name.startswith("sweep-")
    ]


def run_gc(app, runner, *options):
    app.config["REGISTRY_UPLOAD_EXPIRY"] = HOUR
    result = runner.invoke(args=["registry", "gc", "--grace", "0", *options])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result


def unchanged_outside(outside):
    assert (outside / "secret").read_bytes() == SECRET
    assert sorted(os.listdir(outside)) == ["secret"]


@pytest.mark.parametrize("untagged", [False, True], ids=["tagged", "untagged"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("place", PLACES)
def test_gc_works_around_an_odd_entry(
    app, runner, storage, outside, place, kind, untagged
):
    image, garbage, upload = tree_with_garbage(storage)
    path = odd_place(storage, place)
    plant(path, kind, outside / "secret")
    planted = os.lstat(path)
    result = run_gc(app, runner, *(["--untagged"] if untagged else []))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # A link in a blob's place is no blob: removed itself, as unreferenced.
    link_as_blob = place == "blob" and kind in LINKS
    assert f"blobs: removed {2 if link_as_blob else 1}" in result.output
    assert "uploads: removed 1 (0 B)" in lines
    assert not storage.has_blob(garbage)
    assert not os.path.exists(os.path.join(storage.root, "uploads", upload))
    image_intact(storage, image)
    assert sweep_leftovers(storage) == []
    unchanged_outside(outside)
    if stat.S_ISLNK(planted.st_mode):
        # A link is removed itself like any file no manifest keeps, never
        # followed; a manifest record is kept unless --untagged.
        kept = place == "manifest record" and not untagged
        assert os.path.lexists(path) == kept
        assert not any(line.startswith("left in place") for line in lines)
    else:
        # Not a file nor a link: left as it was, and named in the summary.
        assert os.lstat(path).st_mode == planted.st_mode
        assert "left in place: 1 not written by the registry" in lines
        assert f"  {place} {'' if place == 'blob' else 'a '}{ODD} ({kind})" in lines
    if kind == "folder":
        assert os.listdir(path) == ["kept"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("place", PLACES)
def test_gc_dry_run_around_an_odd_entry_changes_nothing(
    app, runner, storage, outside, place, kind
):
    _image, garbage, _upload = tree_with_garbage(storage)
    plant(odd_place(storage, place), kind, outside / "secret")
    before = stored_state(storage)
    result = run_gc(app, runner, "--dry-run", "--untagged")
    assert result.exit_code == 0, result.output
    link_as_blob = place == "blob" and kind in LINKS
    assert f"blobs: would remove {2 if link_as_blob else 1}" in result.output
    assert stored_state(storage) == before
    unchanged_outside(outside)


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry run"])
@pytest.mark.parametrize("kind", UPLOAD_KINDS)
def test_gc_leaves_what_is_no_upload_folder_in_uploads(
    app, runner, storage, outside, kind, dry_run
):
    image, garbage, upload = tree_with_garbage(storage)
    path = os.path.join(storage.root, "uploads", UPLOAD_ID)
    plant(path, kind, outside)
    planted = os.lstat(path)
    result = run_gc(app, runner, *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    verb = "would remove" if dry_run else "removed"
    assert f"uploads: {verb} 1 (0 B)" in lines
    assert f"blobs: {verb} 1 (29 B)" in lines
    assert os.path.lexists(path) and os.lstat(path).st_mode == planted.st_mode
    assert any(line.startswith("left in place: 1") for line in lines)
    assert any(UPLOAD_ID in line for line in lines)
    assert os.path.exists(os.path.join(storage.root, "uploads", upload)) == dry_run
    image_intact(storage, image)
    unchanged_outside(outside)


def test_gc_json_names_what_it_left_in_place(app, runner, storage, outside):
    tree_with_garbage(storage)
    plant(odd_place(storage, "blob"), "fifo", outside / "secret")
    result = run_gc(app, runner, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["left_in_place"] == [
        {"place": "blob", "digest": str(ODD), "found": "fifo"}
    ]


@pytest.mark.parametrize(
    "error",
    [PermissionError(13, "Permission denied", "/somewhere"), OSError(28, "No space")],
)
def test_gc_stopped_by_the_filesystem_says_so_in_one_line(
    runner, storage, monkeypatch, error
):
    def refuse():
        raise error

    monkeypatch.setattr(storage, "scan_blobs", refuse)
    result = runner.invoke(args=["registry", "gc", "--grace", "0"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: garbage collection stopped: ")
    assert error.strerror in lines[0]


def test_a_folder_in_the_catalog_is_left_in_place(app, runner, storage):
    image, garbage, _upload = tree_with_garbage(storage)
    planted = os.path.join(storage.root, "catalog", "ghost+repo")
    os.mkdir(planted)
    os.makedirs(os.path.join(storage.root, "repos", "emptied"))
    age_tree(storage)

    result = run_gc(app, runner)

    assert result.exit_code == 0, result.output
    assert os.path.isdir(planted)
    assert not storage.has_blob(garbage)
    assert not os.path.exists(os.path.join(storage.root, "repos", "emptied"))
    assert os.listdir(os.path.join(storage.root, "tmp")) == []
    image_intact(storage, image)
