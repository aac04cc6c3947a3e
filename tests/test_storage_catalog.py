"""The filesystem driver's catalog index: one directory read lists repositories."""

import os
import shutil

from app.storage.filesystem import FilesystemStorage

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


def test_a_pushed_repository_is_entered_in_the_catalog(tmp_path):
    storage = FilesystemStorage(tmp_path)
    storage.put_manifest("team/app", b"{}", MEDIA_TYPE)
    assert os.listdir(tmp_path / "catalog") == ["team+app"]
    assert storage.list_repositories() == ["team/app"]


def test_a_store_without_catalog_gets_one_built_when_opened(tmp_path):
    storage = FilesystemStorage(tmp_path)
    for name in ("b", "a/b/c", "a"):
        storage.put_manifest(name, b"{}", MEDIA_TYPE)
    shutil.rmtree(tmp_path / "catalog")
    assert FilesystemStorage(tmp_path).list_repositories() == ["a", "a/b/c", "b"]
    assert not os.listdir(tmp_path / "tmp")


def test_listing_reads_the_catalog_not_the_repository_tree(tmp_path):
    storage = FilesystemStorage(tmp_path)
    storage.put_manifest("listed", b"{}", MEDIA_TYPE)
    os.makedirs(tmp_path / "repos" / "unlisted" / "_manifests")
    assert storage.list_repositories() == ["listed"]


def test_a_tag_list_reflects_every_change(tmp_path):
    storage = FilesystemStorage(tmp_path)
    digest = storage.put_manifest("a", b"{}", MEDIA_TYPE)
    for tag in ("v1", "v2"):
        storage.tag_manifest("a", tag, digest)
        assert storage.list_tags("a")[-1] == tag
    storage.delete_tag("a", "v1")
    assert storage.list_tags("a") == ["v2"]


def test_a_settled_tag_list_is_kept_until_the_folder_changes(tmp_path):
    storage = FilesystemStorage(tmp_path)
    digest = storage.put_manifest("a", b"{}", MEDIA_TYPE)
    storage.tag_manifest("a", "v1", digest)
    folder = tmp_path / "repos" / "a" / "_tags"
    os.utime(folder, ns=(10**9, 10**9))  # changed long ago
    assert storage.list_tags("a") == ["v1"]
    (folder / "v1").rename(folder / "v0")
    os.utime(folder, ns=(10**9, 10**9))  # same mtime: the kept list is served
    assert storage.list_tags("a") == ["v1"]
    storage.tag_manifest("a", "v2", digest)
    assert storage.list_tags("a") == ["v0", "v2"]
