"""Garbage collection: what it keeps, what it removes, and what it never touches."""

import io
import json
import logging
import os
import time

import pytest

from app import gc
from app.gc import collect_garbage
from app.reference import compute_digest, parse_digest
from tests.conftest import bearer, get_token, seed_image, sha256
from tests.test_manifest_push import (
    NAME,
    OCI_INDEX,
    OCI_MANIFEST,
    artifact,
    encode,
    oci_manifest,
    pull,
    pushed,
)

OTHER = "team/other"
HOUR = 3600
GARBAGE = b"bytes that nothing references"


def age_everything(storage, seconds=2 * HOUR):
    """Make every file and folder of the tree look ``seconds`` old."""
    then = time.time() - seconds
    for folder, _subfolders, files in os.walk(storage.root):
        for entry in [folder, *(os.path.join(folder, name) for name in files)]:
            os.utime(entry, (then, then))


def snapshot(storage):
    """Return every file of the tree with its content and modification time."""
    files = {}
    for folder, _subfolders, names in os.walk(storage.root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as content:
                files[path] = (content.read(), os.stat(path).st_mtime)
    return files


def collect(storage, **options):
    """Collect with no grace period: everything not referenced is old enough."""
    return collect_garbage(storage, **{"grace": 0, **options})


def garbage(storage, name=NAME, content=GARBAGE):
    """Store and link a blob that no manifest references; return its digest."""
    digest = storage.write_blob([content])
    storage.link_blob(name, digest)
    return digest


def blob_of(data):
    return compute_digest(data)


# Dry runs and reports.


def test_dry_run_changes_nothing(storage):
    seed_image(storage, NAME, "v1")
    garbage(storage)
    storage.create_upload(NAME)
    age_everything(storage)
    before = snapshot(storage)
    result = collect(storage, dry_run=True, untagged=True, upload_expiry=HOUR)
    assert snapshot(storage) == before
    assert [item.key for item in result.blobs] == [str(blob_of(GARBAGE))]


def test_dry_run_reports_what_a_real_run_removes(storage):
    garbage(storage)
    storage.create_upload(NAME)
    age_everything(storage)
    planned = collect(storage, dry_run=True, upload_expiry=HOUR).to_dict()
    done = collect(storage, upload_expiry=HOUR).to_dict()
    assert planned["dry_run"] and not done["dry_run"]
    assert {**planned, "dry_run": False} == done


def test_result_counts_the_bytes_it_frees(storage):
    garbage(storage)
    result = collect(storage)
    assert result.freed_bytes == len(GARBAGE)
    assert result.summary_lines()[-1] == f"freed {len(GARBAGE)} B in total"


def test_real_run_logs_each_removal_and_dry_run_logs_none(storage, caplog):
    garbage(storage)
    caplog.set_level(logging.INFO, logger="app.events")
    collect(storage, dry_run=True)
    collect(storage)
    events = [record.event for record in caplog.records]
    assert events == ["blob link collected", "blob collected", "garbage collected"]


# What marking keeps.


def test_tagged_image_is_kept(client, storage):
    image = seed_image(storage, NAME, "v1")
    result = collect(storage, untagged=True)
    assert result.freed_bytes == 0
    assert pull(client, NAME, "v1").data == image["manifest"]


def test_unreferenced_blob_and_its_link_are_removed(client, storage):
    seed_image(storage, NAME, "v1")
    digest = garbage(storage)
    result = collect(storage)
    assert not storage.has_blob(digest)
    assert [(item.repository, item.key) for item in result.blob_links] == [
        (NAME, str(digest))
    ]


def test_links_of_a_repository_without_manifests_are_removed(storage):
    digest = garbage(storage, name=OTHER)
    result = collect(storage)
    assert [(item.repository, item.key) for item in result.blob_links] == [
        (OTHER, str(digest))
    ]


def untagged_image(client, storage, layer=b"untagged layer"):
    """Push an image by digest only; return its manifest's digest."""
    manifest = oci_manifest(storage, NAME, layers=(layer,))
    return parse_digest(
        pushed(client, NAME, sha256(encode(manifest)), manifest)["digest"]
    )


def test_untagged_manifest_is_kept_without_untagged(client, storage):
    digest = untagged_image(client, storage)
    collect(storage)
    assert storage.has_manifest(NAME, digest)
    assert storage.has_blob(blob_of(b"untagged layer"))


def test_untagged_manifest_is_removed_with_untagged(client, storage):
    seed_image(storage, NAME, "v1")
    digest = untagged_image(client, storage)
    result = collect(storage, untagged=True)
    assert not storage.has_manifest(NAME, digest) and not storage.has_blob(digest)
    assert not storage.has_blob(blob_of(b"untagged layer"))
    assert [item.key for item in result.manifests] == [str(digest)]


def test_a_removed_manifest_counts_its_own_size_once(client, storage):
    digest = untagged_image(client, storage)
    manifest_size = storage.blob_size(digest)
    layer_size = storage.blob_size(blob_of(b"untagged layer"))
    result = collect(storage, untagged=True)
    assert [item.size for item in result.manifests] == [manifest_size]
    blob_sizes = sum(item.size for item in result.blobs)
    assert manifest_size + layer_size <= blob_sizes == result.freed_bytes


def test_command_manifests_line_shows_the_manifest_size(client, runner, storage):
    digest = untagged_image(client, storage)
    size = storage.blob_size(digest)
    result = runner.invoke(args=["registry", "gc", "--untagged", "--grace", "0"])
    assert f"manifests: removed 1 ({size} B)" in result.output.splitlines()


def index_over(storage, children):
    """Return an OCI index over child manifests the repository holds."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": str(child),
                "size": storage.blob_size(child),
            }
            for child in children
        ],
    }


def test_index_children_are_kept(client, storage):
    children = [untagged_image(client, storage, layer) for layer in (b"amd", b"arm")]
    pushed(client, NAME, "multi", index_over(storage, children), OCI_INDEX)
    collect(storage, untagged=True)
    assert all(storage.has_manifest(NAME, child) for child in children)
    assert storage.has_blob(blob_of(b"arm"))


def referrer_of(client, storage, subject):
    """Push an artifact by digest whose subject is ``subject``; return its digest."""
    manifest = artifact(storage, NAME, subject, artifactType="text/x-note")
    return parse_digest(
        pushed(client, NAME, sha256(encode(manifest)), manifest)["digest"]
    )


def test_referrers_of_kept_manifests_are_kept(client, storage):
    subject = pushed(client, NAME, "v1", oci_manifest(storage, NAME))
    digest = referrer_of(client, storage, subject)
    collect(storage, untagged=True)
    assert storage.has_manifest(NAME, digest)
    listed = storage.list_referrers(NAME, parse_digest(subject["digest"]))
    assert [entry["digest"] for entry in listed] == [str(digest)]


def test_referrers_of_removed_manifests_go_with_their_record(client, storage):
    subject = pushed(client, NAME, "v1", oci_manifest(storage, NAME))
    digest = referrer_of(client, storage, subject)
    storage.delete_tag(NAME, "v1")
    collect(storage, untagged=True)
    assert not storage.has_manifest(NAME, digest)
    assert storage.list_referrers(NAME, parse_digest(subject["digest"])) == []


def test_sweep_decides_on_indexes_and_subjects_first(client, storage):
    child = untagged_image(client, storage)
    index = index_over(storage, [child])
    top = pushed(client, NAME, sha256(encode(index)), index, OCI_INDEX)["digest"]
    subject = {"mediaType": OCI_MANIFEST, "digest": str(child), "size": 1}
    referrer = referrer_of(client, storage, subject)
    order = gc.keepers_first(storage, NAME, {referrer, child, parse_digest(top)})
    assert order == [parse_digest(top), child, referrer]


def delete_manifest(client, name, digest):
    url = f"/v2/{name}/manifests/{digest}"
    response = client.delete(url, headers=bearer(client, name, "delete"))
    assert response.status_code == 202


def test_blob_shared_between_repositories_stays_while_one_uses_it(client, storage):
    first = seed_image(storage, NAME, "v1")
    second = seed_image(storage, OTHER, "v1")
    delete_manifest(client, NAME, first["digest"])
    collect(storage)
    layer = blob_of(first["layers"][0])
    assert storage.repository_has_blob(OTHER, layer)
    assert not storage.repository_has_blob(NAME, layer)
    delete_manifest(client, OTHER, second["digest"])
    collect(storage)
    assert not storage.has_blob(layer)


def test_unreadable_manifest_keeps_its_record(storage):
    digest = storage.put_manifest(NAME, b"not json", "application/octet-stream")
    storage.tag_manifest(NAME, "odd", digest)
    collect(storage, untagged=True)
    assert storage.get_manifest(NAME, digest).body == b"not json"


# Uploads and the grace period.


def test_expired_uploads_are_removed_and_fresh_ones_kept(client, storage):
    expired = storage.create_upload(NAME)
    storage.append_upload(NAME, expired, io.BytesIO(b"x" * 100))
    age_everything(storage)
    fresh = storage.create_upload(NAME)
    result = collect(storage, upload_expiry=HOUR)
    assert [(item.key, item.size) for item in result.uploads] == [(expired, 100)]
    assert storage.upload_size(NAME, fresh) == 0


def test_old_leftovers_in_tmp_are_removed_files_and_folders(storage):
    tmp = os.path.join(storage.root, "tmp")
    os.makedirs(os.path.join(tmp, "half-built", "inner"))
    with open(os.path.join(tmp, "half-written"), "wb") as leftover:
        leftover.write(b"partial")
    age_everything(storage)
    collect(storage, upload_expiry=HOUR)
    assert os.listdir(tmp) == []


def test_uploads_are_left_alone_without_an_expiry(storage):
    upload_id = storage.create_upload(NAME)
    age_everything(storage)
    collect(storage)
    assert storage.upload_size(NAME, upload_id) == 0


def test_grace_period_keeps_what_was_written_recently(storage):
    digest = garbage(storage)
    collect_garbage(storage, grace=HOUR)
    assert storage.repository_has_blob(NAME, digest)
    age_everything(storage)
    collect_garbage(storage, grace=HOUR)
    assert not storage.has_blob(digest)


def test_grace_period_keeps_recent_untagged_manifests(client, storage):
    digest = untagged_image(client, storage)
    collect_garbage(storage, grace=HOUR, untagged=True)
    assert storage.has_manifest(NAME, digest)
    assert storage.has_blob(blob_of(b"untagged layer"))


# What refreshes a blob for a running collection.


def link_again(client, storage, digest):
    storage.link_blob(OTHER, digest)
    return OTHER


def mount(client, storage, digest):
    url = f"/v2/{OTHER}/blobs/uploads/?mount={digest}&from={NAME}"
    token = get_token(client, f"repository:{OTHER}:push", f"repository:{NAME}:pull")
    response = client.post(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201
    return OTHER


def upload_again(client, storage, digest):
    url = f"/v2/{NAME}/blobs/uploads/?digest={digest}"
    response = client.post(url, data=GARBAGE, headers=bearer(client, NAME, "push"))
    assert response.status_code == 201
    return NAME


def check_with_head(client, storage, digest):
    url = f"/v2/{NAME}/blobs/{digest}"
    assert client.head(url, headers=bearer(client, NAME)).status_code == 200
    return NAME


REFRESHES = {
    "link": link_again,
    "mount": mount,
    "upload": upload_again,
    "head": check_with_head,
}


@pytest.mark.parametrize("refresh", REFRESHES.values(), ids=list(REFRESHES))
def test_old_blob_used_again_is_kept(client, storage, refresh):
    digest = garbage(storage)
    age_everything(storage)
    name = refresh(client, storage, digest)
    collect_garbage(storage, grace=HOUR)
    assert storage.repository_has_blob(name, digest)


def test_committing_a_long_running_upload_refreshes_the_blob(client, storage):
    upload_id = storage.create_upload(NAME)
    storage.append_upload(NAME, upload_id, io.BytesIO(GARBAGE))
    age_everything(storage)
    digest = storage.commit_upload(NAME, upload_id, blob_of(GARBAGE))
    collect_garbage(storage, grace=HOUR)
    assert storage.has_blob(digest)


def test_manifest_pushed_between_marking_and_sweeping_keeps_its_blobs(client, storage):
    manifest = oci_manifest(storage, NAME, layers=(GARBAGE,))
    age_everything(storage)
    cutoff = time.time() - HOUR
    marks = {NAME: gc.mark_repository(storage, NAME, cutoff, untagged=True)}
    pushed(client, NAME, "v1", manifest)
    result = gc.CollectionResult(dry_run=False)
    kept = gc.sweep_blob_links(storage, marks, cutoff, result)
    gc.sweep_blobs(storage, kept, cutoff, result)
    assert result.freed_bytes == 0
    assert storage.repository_has_blob(NAME, blob_of(GARBAGE))


def test_sweep_keeps_a_file_touched_after_the_listing(storage):
    digest = garbage(storage)
    age_everything(storage)
    cutoff = time.time() - HOUR
    storage.touch_blob(NAME, digest)
    assert not storage.sweep_blob(digest, cutoff)
    assert storage.has_blob(digest)


# The command.


def test_command_prints_what_it_frees(runner, storage):
    garbage(storage)
    result = runner.invoke(args=["registry", "gc", "--grace", "0"])
    assert result.exit_code == 0, result.output
    assert f"blobs: removed 1 ({len(GARBAGE)} B)" in result.output.splitlines()


def test_command_dry_run_as_json(runner, storage):
    digest = garbage(storage)
    args = ["registry", "gc", "--grace", "0", "--dry-run", "--json"]
    result = runner.invoke(args=args)
    report = json.loads(result.output)
    assert report["blobs"] == [{"digest": str(digest), "size": len(GARBAGE)}]
    assert report["dry_run"] and storage.has_blob(digest)


def test_command_grace_defaults_to_the_configuration(app, runner, storage):
    digest = garbage(storage)
    app.config["REGISTRY_GC_GRACE"] = HOUR
    result = runner.invoke(args=["registry", "gc"])
    assert result.exit_code == 0 and storage.has_blob(digest)


def test_command_untagged_removes_untagged_manifests(client, runner, storage):
    digest = untagged_image(client, storage)
    runner.invoke(args=["registry", "gc", "--grace", "0", "--untagged"])
    assert not storage.has_manifest(NAME, digest)


def test_command_refuses_a_negative_grace(runner):
    result = runner.invoke(args=["registry", "gc", "--grace", "-1"])
    assert result.exit_code == 2 and "--grace" in result.output


def test_shell_offers_collect_garbage(app, storage):
    garbage(storage)
    with app.app_context():
        namespace = app.make_shell_context()
    result = namespace["collect_garbage"](storage, dry_run=True, grace=0)
    assert [item.key for item in result.blobs] == [str(blob_of(GARBAGE))]
