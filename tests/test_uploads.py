"""Blob uploads: monolithic, chunked, streamed, mounted, and their failures."""

import hashlib
import io
import os

import pytest

from app.reference import compute_digest
from app.storage.errors import UploadNotFound
from tests.conftest import bearer, seed_image, sha256

BLOB = os.urandom(300_000)
NAME = "team/app"


@pytest.fixture
def headers(client):
    return bearer(client, NAME, "pull,push")


def start(client, headers, query=""):
    return client.post(f"/v2/{NAME}/blobs/uploads/{query}", headers=headers)


def patch(client, headers, location, data, content_range=None):
    extra = {"Content-Range": content_range} if content_range else {}
    return client.patch(location, data=data, headers={**headers, **extra})


def pull_blob(client, headers, digest):
    return client.get(f"/v2/{NAME}/blobs/{digest}", headers=headers)


def test_post_opens_an_upload(client, headers):
    response = start(client, headers)
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{NAME}/blobs/uploads/")
    assert response.headers["Range"] == "0-0" and response.headers["Docker-Upload-UUID"]


def test_monolithic_post_with_digest_stores_the_blob(client, headers):
    response = client.post(
        f"/v2/{NAME}/blobs/uploads/?digest={sha256(BLOB)}", data=BLOB, headers=headers
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{NAME}/blobs/{sha256(BLOB)}"
    assert pull_blob(client, headers, sha256(BLOB)).data == BLOB


def test_post_then_put_with_the_body_stores_the_blob(client, headers):
    location = start(client, headers).headers["Location"]
    response = client.put(
        f"{location}?digest={sha256(BLOB)}", data=BLOB, headers=headers
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(BLOB)


def test_streamed_patch_then_empty_put_stores_the_blob(client, headers):
    location = start(client, headers).headers["Location"]
    response = patch(client, headers, location, BLOB)
    assert response.headers["Range"] == f"0-{len(BLOB) - 1}"
    response = client.put(f"{location}?digest={sha256(BLOB)}", headers=headers)
    assert response.status_code == 201
    assert pull_blob(client, headers, sha256(BLOB)).data == BLOB


def test_chunks_with_content_range_add_up(client, headers):
    location = start(client, headers).headers["Location"]
    for offset in range(0, len(BLOB), 100_000):
        chunk = BLOB[offset : offset + 100_000]
        content_range = f"{offset}-{offset + len(chunk) - 1}"
        response = patch(client, headers, location, chunk, content_range)
        assert response.status_code == 202
    response = client.put(f"{location}?digest={sha256(BLOB)}", headers=headers)
    assert pull_blob(client, headers, sha256(BLOB)).data == BLOB


@pytest.mark.parametrize(
    "content_range", ["0-99", "200-299", "50-149"], ids=["retry", "gap", "overlap"]
)
def test_chunk_not_starting_at_the_end_is_416_and_changes_nothing(
    client, headers, content_range
):
    location = start(client, headers).headers["Location"]
    patch(client, headers, location, BLOB[:100], "0-99")
    response = patch(client, headers, location, BLOB[100:200], content_range)
    assert response.status_code == 416
    assert client.get(location, headers=headers).headers["Range"] == "0-99"


@pytest.mark.parametrize("content_range", ["abc", "5", "bytes 1-2-3", "9-3"])
def test_malformed_content_range_is_refused(client, headers, content_range):
    location = start(client, headers).headers["Location"]
    response = patch(client, headers, location, b"xyz", content_range)
    assert response.status_code in (400, 416)
    assert response.json["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"


def test_get_on_the_upload_reports_its_progress(client, headers):
    location = start(client, headers).headers["Location"]
    patch(client, headers, location, BLOB[:10], "0-9")
    response = client.get(location, headers=headers)
    assert response.status_code == 204
    assert (response.headers["Range"], response.headers["Location"]) == (
        "0-9",
        location,
    )


def test_delete_cancels_the_upload(client, headers):
    location = start(client, headers).headers["Location"]
    assert client.delete(location, headers=headers).status_code == 204
    assert client.get(location, headers=headers).status_code == 404


def test_wrong_digest_is_refused_and_nothing_is_stored(client, headers, storage):
    location = start(client, headers).headers["Location"]
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    response = client.put(f"{location}?digest={wrong}", data=BLOB, headers=headers)
    assert response.json["errors"][0]["code"] == "DIGEST_INVALID"
    assert pull_blob(client, headers, wrong).status_code == 404


def test_put_without_digest_is_refused(client, headers):
    location = start(client, headers).headers["Location"]
    response = client.put(location, data=BLOB, headers=headers)
    assert response.status_code == 400
    assert response.json["errors"][0]["code"] == "DIGEST_INVALID"


def test_sha512_digest_is_accepted(client, headers):
    digest = "sha512:" + hashlib.sha512(BLOB).hexdigest()
    location = start(client, headers).headers["Location"]
    response = client.put(f"{location}?digest={digest}", data=BLOB, headers=headers)
    assert response.status_code == 201
    assert pull_blob(client, headers, digest).data == BLOB


def test_monolithic_post_with_wrong_digest_leaves_no_file(client, headers, storage):
    wrong = "sha256:" + "0" * 64
    url = f"/v2/{NAME}/blobs/uploads/?digest={wrong}"
    response = client.post(url, data=BLOB, headers=headers)
    assert response.status_code == 400
    assert os.listdir(os.path.join(storage.root, "tmp")) == []


@pytest.mark.parametrize(
    "upload_id", ["nope", "00000000-0000-0000-0000-000000000000", ".."]
)
def test_unknown_upload_is_blob_upload_unknown(client, headers, upload_id):
    response = client.patch(
        f"/v2/{NAME}/blobs/uploads/{upload_id}", data=b"x", headers=headers
    )
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_upload_cannot_be_continued_through_another_repository(client, headers):
    location = start(client, headers).headers["Location"]
    other = location.replace(NAME, "other")
    response = client.patch(other, data=b"x", headers=bearer(client, "other", "push"))
    assert response.status_code == 404


def test_mount_from_a_repository_holding_the_blob_is_201(client, storage):
    image = seed_image(storage, "source", "v1")
    layer = sha256(image["layers"][0])
    headers = bearer(client, NAME, "pull,push")
    token = client.get(
        "/token",
        query_string={
            "scope": [f"repository:{NAME}:pull,push", "repository:source:pull"]
        },
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    response = start(client, headers, f"?mount={layer}&from=source")
    assert response.status_code == 201
    assert pull_blob(client, headers, layer).status_code == 200


def test_mount_of_a_missing_blob_opens_an_upload(client, headers, storage):
    seed_image(storage, "source", "v1")
    response = start(client, headers, f"?mount=sha256:{'0' * 64}&from=source")
    assert response.status_code == 202
    assert "/blobs/uploads/" in response.headers["Location"]


def test_mount_needs_pull_on_the_source(client, headers, storage):
    image = seed_image(storage, "source", "v1")
    layer = sha256(image["layers"][0])
    response = start(client, headers, f"?mount={layer}&from=source")
    assert response.status_code == 202


def test_mount_without_from_finds_the_blob_anywhere(client, headers, storage):
    image = seed_image(storage, "source", "v1")
    layer = sha256(image["layers"][0])
    response = start(client, headers, f"?mount={layer}")
    assert response.status_code == 201


def test_push_needs_the_push_grant(client):
    response = start(client, bearer(client, NAME, "pull"))
    assert response.status_code == 401
    assert 'scope="repository:team/app:push"' in response.headers["WWW-Authenticate"]


def test_two_uploads_of_the_same_blob_both_succeed(client, headers, storage):
    first = start(client, headers).headers["Location"]
    second = start(client, headers).headers["Location"]
    for location in (first, second):
        patch(client, headers, location, BLOB)
    for location in (first, second):
        response = client.put(f"{location}?digest={sha256(BLOB)}", headers=headers)
        assert response.status_code == 201
    assert storage.read_blob(storage.write_blob([BLOB])) == BLOB


def test_idle_uploads_expire(client, headers, storage):
    location = start(client, headers).headers["Location"]
    assert storage.expire_uploads(max_age=-1) == [location.rsplit("/", 1)[1]]
    assert client.get(location, headers=headers).status_code == 404


def test_delete_blob_stops_the_repository_serving_it(client, storage):
    image = seed_image(storage, NAME, "v1")
    layer = sha256(image["layers"][0])
    headers = bearer(client, NAME, "pull,delete")
    assert (
        client.delete(f"/v2/{NAME}/blobs/{layer}", headers=headers).status_code == 202
    )
    assert pull_blob(client, headers, layer).status_code == 404


def test_delete_of_an_unknown_blob_is_404(client):
    headers = bearer(client, NAME, "delete")
    response = client.delete(f"/v2/{NAME}/blobs/sha256:{'0' * 64}", headers=headers)
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_blob_delete_is_405_when_deletes_are_off(app, client, storage):
    app.config["REGISTRY_DELETE_ENABLED"] = False
    image = seed_image(storage, NAME, "v1")
    url = f"/v2/{NAME}/blobs/{sha256(image['layers'][0])}"
    response = client.delete(url, headers=bearer(client, NAME, "delete"))
    assert response.status_code == 405
    assert response.json["errors"][0]["code"] == "UNSUPPORTED"


def test_answers_without_a_body_name_no_media_type(client, headers):
    opened = start(client, headers)
    location = opened.headers["Location"]
    progress = client.get(location, headers=headers)
    done = client.put(f"{location}?digest={sha256(b'x')}", data=b"x", headers=headers)
    deleted = client.delete(
        f"/v2/{NAME}/blobs/{sha256(b'x')}", headers=bearer(client, NAME, "delete")
    )
    for response, status in (
        (opened, 202),
        (progress, 204),
        (done, 201),
        (deleted, 202),
    ):
        assert response.status_code == status
        assert "Content-Type" not in response.headers


@pytest.mark.parametrize("action", ["append", "size", "commit"])
def test_a_link_in_place_of_an_uploads_data_is_not_followed(storage, action):
    theirs = storage.create_upload("team/theirs")
    storage.append_upload("team/theirs", theirs, io.BytesIO(b"their bytes"))
    mine = storage.create_upload("team/mine")
    data = storage._upload_path(mine, "data")
    os.unlink(data)
    os.symlink(os.path.join("..", theirs, "data"), data)

    with pytest.raises(UploadNotFound):
        if action == "append":
            storage.append_upload("team/mine", mine, io.BytesIO(b"appended"))
        elif action == "size":
            storage.upload_size("team/mine", mine)
        else:
            storage.commit_upload("team/mine", mine, compute_digest(b"their bytes"))

    assert storage.upload_size("team/theirs", theirs) == len(b"their bytes")
    assert not storage.has_blob(compute_digest(b"their bytes"))
