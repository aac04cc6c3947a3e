"""The storage contract: every driver must pass the tests of StorageContract."""

import io
import os
import time

import pytest

from app.reference import compute_digest, parse_digest
from app.storage.errors import (
    BlobNotFound,
    DigestMismatch,
    ManifestNotFound,
    OutsideRoot,
    RepositoryNotFound,
    SizeMismatch,
    UploadNotFound,
    UploadRangeMismatch,
)
from app.storage.filesystem import FilesystemStorage

DATA = b"some content" * 1000
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


class StorageContract:
    """What views rely on, whatever the driver; subclasses give ``storage``."""

    def test_written_blob_reads_back(self, storage):
        digest = storage.write_blob(io.BytesIO(DATA))
        assert digest == compute_digest(DATA)
        assert storage.read_blob(digest) == DATA and storage.blob_size(digest) == len(
            DATA
        )

    def test_blob_with_wrong_digest_is_not_stored(self, storage):
        wrong = compute_digest(b"other")
        with pytest.raises(DigestMismatch):
            storage.write_blob([DATA], digest=wrong)
        assert not storage.has_blob(wrong) and not storage.has_blob(
            compute_digest(DATA)
        )

    def test_blob_with_wrong_size_is_not_stored(self, storage):
        with pytest.raises(SizeMismatch):
            storage.write_blob([DATA], size=len(DATA) + 1)
        assert not storage.has_blob(compute_digest(DATA))

    def test_failing_stream_leaves_nothing(self, storage):
        def broken():
            yield DATA
            raise OSError("connection lost")

        with pytest.raises(OSError):
            storage.write_blob(broken())
        assert not storage.has_blob(compute_digest(DATA))

    def test_missing_blob_is_reported(self, storage):
        with pytest.raises(BlobNotFound):
            storage.blob_size(compute_digest(b"absent"))

    def test_linked_blob_is_served_only_by_its_repository(self, storage):
        digest = storage.write_blob([DATA])
        storage.link_blob("a/b", digest)
        assert storage.repository_has_blob("a/b", digest)
        assert not storage.repository_has_blob("a", digest)

    def test_manifest_and_tag_round_trip(self, storage):
        digest = storage.put_manifest("a", b'{"x": 1}', MEDIA_TYPE)
        storage.tag_manifest("a", "v1", digest)
        manifest = storage.get_manifest("a", storage.resolve_tag("a", "v1"))
        assert (manifest.body, manifest.media_type) == (b'{"x": 1}', MEDIA_TYPE)

    def test_unknown_tag_is_reported(self, storage):
        storage.put_manifest("a", b"{}", MEDIA_TYPE)
        with pytest.raises(ManifestNotFound):
            storage.resolve_tag("a", "nope")

    def test_nested_repositories_are_listed_apart(self, storage):
        for name in ("a", "a/b", "a/b/c", "z"):
            storage.put_manifest(name, b"{}", MEDIA_TYPE)
        assert storage.list_repositories() == ["a", "a/b", "a/b/c", "z"]
        assert storage.list_tags("a/b") == []

    def test_every_stored_blob_is_listed(self, storage):
        blob = storage.write_blob([DATA])
        manifest = storage.put_manifest("a", b"{}", MEDIA_TYPE)
        assert sorted(storage.list_blobs(), key=str) == sorted(
            [blob, manifest], key=str
        )

    def test_untagged_manifests_are_listed(self, storage):
        tagged = storage.put_manifest("a", b'{"x": 1}', MEDIA_TYPE)
        untagged = storage.put_manifest("a", b'{"x": 2}', MEDIA_TYPE)
        storage.tag_manifest("a", "v1", tagged)
        assert set(storage.list_manifests("a")) == {tagged, untagged}
        assert storage.list_manifests("b") == []

    def test_tag_push_time_is_known(self, storage):
        digest = storage.put_manifest("a", b"{}", MEDIA_TYPE)
        storage.tag_manifest("a", "v1", digest)
        assert storage.tag_pushed_at("a", "v1") > 0
        with pytest.raises(ManifestNotFound):
            storage.tag_pushed_at("a", "v2")

    def test_tags_of_unknown_repository_are_reported(self, storage):
        with pytest.raises(RepositoryNotFound):
            storage.list_tags("nothing")

    def test_upload_appends_and_commits(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(DATA[:100]), start=0)
        storage.append_upload("a", upload, io.BytesIO(DATA[100:]), start=100)
        assert storage.commit_upload("a", upload, compute_digest(DATA))
        assert storage.read_blob(compute_digest(DATA)) == DATA

    def test_upload_chunk_in_the_wrong_place_changes_nothing(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(b"12345"))
        with pytest.raises(UploadRangeMismatch):
            storage.append_upload("a", upload, io.BytesIO(b"678"), start=3)
        assert storage.upload_size("a", upload) == 5

    def test_upload_interrupted_midway_is_cut_back(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(b"12345"))
        with pytest.raises(OSError):
            storage.append_upload("a", upload, BrokenStream(b"678"))
        assert storage.upload_size("a", upload) == 5

    def test_upload_with_wrong_digest_is_not_committed(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(DATA))
        with pytest.raises(DigestMismatch):
            storage.commit_upload("a", upload, compute_digest(b"other"))
        assert not storage.has_blob(compute_digest(DATA))

    def test_upload_hash_is_right_when_another_worker_appended(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(DATA[:10]))
        type(storage).running_hashes.entries.clear()
        storage.append_upload("a", upload, io.BytesIO(DATA[10:]))
        assert storage.commit_upload("a", upload, compute_digest(DATA))

    def test_cancelled_upload_is_gone(self, storage):
        upload = storage.create_upload("a")
        storage.cancel_upload("a", upload)
        with pytest.raises(UploadNotFound):
            storage.upload_size("a", upload)

    # Listings and sweeps for garbage collection; a cutoff in the future makes
    # everything old enough to go, one in the past keeps everything.

    def test_repositories_with_only_blob_links_are_stored_repositories(self, storage):
        storage.put_manifest("a", b"{}", MEDIA_TYPE)
        storage.link_blob("b", storage.write_blob([DATA]))
        assert storage.list_repositories() == ["a"]
        assert storage.list_stored_repositories() == ["a", "b"]

    def test_blobs_are_listed_with_their_size(self, storage):
        digest = storage.write_blob([DATA])
        listed = {item.key: item.size for item in storage.scan_blobs()}
        assert listed == {digest: len(DATA)}

    def test_blob_is_swept_only_when_older_than_the_cutoff(self, storage):
        digest = storage.write_blob([DATA])
        assert not storage.sweep_blob(digest, time.time() - 60)
        assert storage.sweep_blob(digest, time.time() + 60)
        assert not storage.has_blob(digest)

    def test_blob_links_are_listed_and_swept(self, storage):
        digest = storage.write_blob([DATA])
        storage.link_blob("a", digest)
        assert [item.key for item in storage.scan_blob_links("a")] == [digest]
        assert storage.list_blob_links("a") == [digest]
        assert storage.sweep_blob_link("a", digest, time.time() + 60)
        assert not storage.repository_has_blob("a", digest) and storage.has_blob(digest)

    def test_manifests_are_listed_and_swept(self, storage):
        digest = storage.put_manifest("a", b"{}", MEDIA_TYPE)
        assert [item.key for item in storage.scan_manifests("a")] == [digest]
        assert storage.sweep_manifest("a", digest, time.time() + 60)
        assert not storage.has_manifest("a", digest) and storage.has_blob(digest)

    def test_touch_tells_whether_the_repository_holds_it(self, storage):
        digest = storage.write_blob([DATA])
        assert not storage.touch_blob("a", digest)
        storage.link_blob("a", digest)
        assert storage.touch_blob("a", digest)
        assert not storage.touch_manifest("a", digest)

    def test_linking_a_missing_blob_is_reported(self, storage):
        with pytest.raises(BlobNotFound):
            storage.link_blob("a", compute_digest(b"absent"))

    def test_uploads_are_listed_with_their_size(self, storage):
        upload = storage.create_upload("a")
        storage.append_upload("a", upload, io.BytesIO(b"12345"))
        assert [(item.key, item.size) for item in storage.scan_uploads()] == [
            (upload, 5)
        ]


class BrokenStream:
    """A request body whose client goes away after the first read."""

    def __init__(self, first):
        self.first = first

    def read(self, size):
        if self.first is None:
            raise OSError("client went away")
        block, self.first = self.first, None
        return block


class TestFilesystemStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        return FilesystemStorage(tmp_path / "root")

    def test_paths_escaping_the_root_are_refused(self, storage):
        with pytest.raises(OutsideRoot):
            storage.resolve_tag("../../etc", "passwd")

    def test_no_temporary_file_is_left_behind(self, storage):
        with pytest.raises(DigestMismatch):
            storage.write_blob([DATA], digest=compute_digest(b"x"))
        assert os.listdir(os.path.join(storage.root, "tmp")) == []

    def test_touch_answers_when_times_cannot_be_set(self, storage, monkeypatch):
        digest = storage.write_blob([DATA])
        storage.link_blob("a", digest)

        def refuse(path, *args, **kwargs):
            raise PermissionError(path)

        monkeypatch.setattr(os, "utime", refuse)
        assert storage.touch_blob("a", digest)
        assert not storage.touch_blob("b", digest)

    def test_sha512_blobs_live_under_their_algorithm(self, storage):
        digest = parse_digest("sha512:" + compute_digest(DATA, "sha512").hex)
        storage.write_blob([DATA], digest=digest)
        assert os.path.isfile(
            os.path.join(storage.root, "blobs", "sha512", digest.hex[:2], digest.hex)
        )
