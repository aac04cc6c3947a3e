"""The web UI: pages, their JSON twins, access rules, sign-in, CSRF and deletes."""

import json
import logging
import re

import pytest

from app.reference import compute_digest
from app.ui import access
from tests.accounts_kit import TEST_ROUNDS
from tests.conftest import (
    DOCKER_MANIFEST,
    ClosingClient,
    bearer,
    descriptor,
    make_app,
    seed_image,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
ACCOUNTS = {"alice": "wonderland", "bob": "builder"}
# Who may delete where, standing in for the account rules auth will provide.
DELETERS = {"alice"}
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# What a script asking for the JSON twin of a page sends.
WANTS_JSON = {"Accept": "application/json"}
IMAGE_CONFIG = {
    "architecture": "arm64",
    "os": "linux",
    "created": "2026-01-02T03:04:05Z",
    "config": {
        "Entrypoint": ["/bin/busybox"],
        "Cmd": ["cat", "/greeting.txt"],
        "Env": ["PATH=/bin", "GREETING=hello"],
        "Labels": {"org.opencontainers.image.title": "greeter"},
    },
    "history": [{"created_by": "COPY busybox /bin/busybox"}],
}


@pytest.fixture
def accounts(app, monkeypatch):
    """Create the ACCOUNTS; let DELETERS delete and everyone signed in pull."""
    registry_accounts = app.extensions["registry_accounts"]
    registry_accounts.rounds = TEST_ROUNDS
    for username, password in ACCOUNTS.items():
        registry_accounts.set_password(username, password)

    def may(account, name, action):
        if account is None:
            return action == "pull"
        return action == "pull" or (action == "delete" and account in DELETERS)

    monkeypatch.setattr(access, "may", may)


def seed_rich_image(storage, name, tag, layers=(b"busybox layer", b"greeting")):
    """Store an image whose config has an entrypoint, env, labels and history."""
    return seed_image(storage, name, tag, layers, config=IMAGE_CONFIG)["digest"]


def seed_index(storage, name, tag):
    """Store a two-platform index under ``name:tag``; return the child digests."""
    children = []
    for architecture, layer in (("amd64", b"x86 layer"), ("arm64", b"arm layer")):
        image = seed_image(storage, name, f"only-{architecture}", layers=(layer,))
        entry = descriptor(DOCKER_MANIFEST, image["manifest"])
        entry["platform"] = {"os": "linux", "architecture": architecture}
        children.append(entry)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    digest = storage.put_manifest(name, json.dumps(index).encode(), OCI_INDEX)
    storage.tag_manifest(name, tag, digest)
    return [child["digest"] for child in children]


def push_signature(client, name, subject):
    """Push, through the API, an artifact whose subject is ``subject``."""
    empty = b"{}"
    headers = bearer(client, name, "pull,push")
    upload = client.post(f"/v2/{name}/blobs/uploads/", headers=headers)
    location = upload.headers["Location"]
    digest = str(compute_digest(empty))
    client.put(location, query_string={"digest": digest}, data=empty, headers=headers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": descriptor(EMPTY_CONFIG, empty),
        "layers": [],
        "subject": {"mediaType": DOCKER_MANIFEST, "digest": str(subject), "size": 1},
    }
    response = client.put(
        f"/v2/{name}/manifests/sha256:{compute_digest(json.dumps(manifest).encode()).hex}",
        data=json.dumps(manifest).encode(),
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.data
    return response.headers["Docker-Content-Digest"]


def form_token_of(client, path="/ui/sign-in"):
    """Return the CSRF token the page at ``path`` puts in its forms."""
    return TOKEN_FIELD.search(client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, username, password=None):
    """Sign in through the form; return the response."""
    return client.post(
        "/ui/sign-in",
        data={
            "username": username,
            "password": ACCOUNTS.get(username) if password is None else password,
            "csrf_token": form_token_of(client),
        },
    )


def delete(client, name, reference, token=None, headers=None):
    """Post the delete form for ``reference``, with this session's token by default."""
    if token is None:
        token = form_token_of(client, f"/ui/delete/{name}?reference={reference}")
    return client.post(
        f"/ui/delete/{name}",
        data={"reference": reference, "csrf_token": token},
        headers=headers,
    )


# Pages and their JSON twins.


def test_root_leads_to_the_ui(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/ui/")


def test_repositories_are_listed_with_tag_count_and_size(client, storage):
    image = seed_image(storage, "team/app", "v1")
    storage.tag_manifest("team/app", "latest", image["digest"])
    listing = client.get("/ui/?format=json").json["repositories"]
    expected = len(image["manifest"]) + len(image["config"])
    expected += sum(len(layer) for layer in image["layers"])
    assert [(r["name"], r["tag_count"], r["size"]) for r in listing] == [
        ("team/app", 2, expected)
    ]
    assert listing[0]["last_pushed"].endswith("Z")


def test_repositories_are_filtered_by_name(client, storage):
    seed_image(storage, "team/app", "v1")
    seed_image(storage, "other/tool", "v1")
    page = client.get("/ui/?q=tool").get_data(as_text=True)
    assert "other/tool" in page and "team/app" not in page


def test_repository_page_shows_tags_and_pull_command(client, storage):
    digest = seed_rich_image(storage, "team/app", "v1")
    response = client.get(
        "/ui/repositories/team/app", base_url="http://codehex-local:5080"
    )
    page = response.get_data(as_text=True)
    assert "docker pull codehex-local:5080/team/app:v1" in page
    assert str(digest)[:19] in page and "2026-01-02T03:04:05Z" in page


def test_repository_twin_gives_each_tag_in_json(client, storage):
    digest = seed_rich_image(storage, "team/app", "v1")
    tags = client.get("/ui/repositories/team/app?format=json").json["tags"]
    assert tags[0]["digest"] == str(digest)
    assert (tags[0]["media_type"], tags[0]["created"]) == (
        DOCKER_MANIFEST,
        IMAGE_CONFIG["created"],
    )


def test_index_tag_lists_its_platforms(client, storage):
    seed_index(storage, "multi", "latest")
    tags = client.get("/ui/repositories/multi?format=json").json["tags"]
    latest = next(tag for tag in tags if tag["tag"] == "latest")
    assert latest["platforms"] == ["linux/amd64", "linux/arm64"]


def test_manifest_page_summarizes_the_config(client, storage):
    seed_rich_image(storage, "team/app", "v1")
    page = client.get("/ui/manifests/team/app/v1").get_data(as_text=True)
    assert "GREETING=hello" in page and "org.opencontainers.image.title=greeter" in page
    assert "COPY busybox /bin/busybox" in page and "/bin/busybox" in page


def test_manifest_twin_lists_layers_with_sizes(client, storage):
    seed_rich_image(storage, "team/app", "v1", layers=(b"a" * 300, b"b" * 7))
    manifest = client.get("/ui/manifests/team/app/v1?format=json").json
    assert [layer["size"] for layer in manifest["layers"]] == [300, 7]
    assert manifest["config"]["entrypoint"] == ["/bin/busybox"]


def test_manifest_lists_referrers_by_artifact_type(client, storage):
    subject = seed_rich_image(storage, "team/app", "v1")
    signature = push_signature(client, "team/app", subject)
    manifest = client.get(f"/ui/manifests/team/app/{subject}?format=json").json
    group = manifest["referrers"][0]
    assert group["artifact_type"] == SIGNATURE_TYPE
    assert [referrer["digest"] for referrer in group["referrers"]] == [signature]


def test_index_page_links_its_platform_manifests(client, storage):
    children = seed_index(storage, "multi", "latest")
    page = client.get("/ui/manifests/multi/latest").get_data(as_text=True)
    assert f"/ui/manifests/multi/{children[1]}" in page and "linux/arm64" in page


def test_storage_splits_shared_and_unique_bytes(client, storage):
    shared_layer = b"s" * 1000
    seed_image(storage, "one", "v1", layers=(shared_layer, b"1" * 10))
    seed_image(storage, "two", "v1", layers=(shared_layer, b"2" * 20))
    rows = client.get("/ui/storage?format=json").json["repositories"]
    one = next(row for row in rows if row["name"] == "one")
    # The config blob is the same in both images, so it is shared too.
    assert one["shared"] >= 1000 and one["shared"] + one["unique"] == one["size"]


def test_storage_counts_what_gc_would_free(client, storage):
    seed_image(storage, "one", "v1")
    storage.write_blob([b"abandoned upload" * 10])
    usage = client.get("/ui/storage?format=json").json
    assert (usage["reclaimable"], usage["reclaimable_count"]) == (160, 1)
    assert usage["total"] > usage["reclaimable"]


def test_pages_load_nothing_from_elsewhere(client, storage):
    seed_rich_image(storage, "team/app", "v1")
    for path in ("/ui/", "/ui/repositories/team/app", "/ui/manifests/team/app/v1"):
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', page), path


def test_pages_may_not_be_framed_or_load_other_sites(client):
    headers = client.get("/ui/").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_pages_fit_a_phone_and_dark_mode(client):
    page = client.get("/ui/").get_data(as_text=True)
    style = client.get("/ui/static/style.css").get_data(as_text=True)
    assert 'name="viewport"' in page
    assert "prefers-color-scheme: dark" in style and "max-width" in style


# Bad input.


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/ui/repositories/Bad..Name", 400, "NAME_INVALID"),
        ("/ui/repositories/absent", 404, "NAME_UNKNOWN"),
        ("/ui/manifests/team/app/no-such-tag", 404, "MANIFEST_UNKNOWN"),
        ("/ui/manifests/team/app/sha256:abc", 400, "DIGEST_INVALID"),
        ("/ui/manifests/team/app/bad%20tag", 400, "MANIFEST_INVALID"),
    ],
)
def test_bad_input_answers_an_oci_error(client, storage, path, status, code):
    seed_image(storage, "team/app", "v1")
    response = client.get(path, headers=WANTS_JSON)
    assert response.status_code == status
    assert response.json["errors"][0]["code"] == code


# Access rules.


@pytest.fixture
def private_client(tmp_path):
    """A client of a registry that lets nobody pull without signing in."""
    app = make_app(tmp_path, REGISTRY_ANONYMOUS_PULL=False)
    seed_image(app.extensions["registry_storage"], "secret/app", "v1")
    app.test_client_class = ClosingClient
    return app.test_client()


def test_anonymous_visitor_sees_only_what_they_may_pull(private_client):
    listing = private_client.get("/ui/?format=json").json
    usage = private_client.get("/ui/storage?format=json").json
    assert listing["repositories"] == [] and usage["repositories"] == []


@pytest.mark.parametrize(
    "path", ["/ui/repositories/secret/app", "/ui/manifests/secret/app/v1"]
)
def test_anonymous_visitor_is_refused_a_private_repository(private_client, path):
    response = private_client.get(path, headers=WANTS_JSON)
    assert response.status_code == 403
    assert response.json["errors"][0]["code"] == "DENIED"


def test_no_credentials_sign_in_while_no_accounts_exist(client):
    response = sign_in(client, "alice", "wonderland")
    assert response.status_code == 401
    assert "wrong username or password" in response.get_data(as_text=True)


# Signing in and deleting.


def test_wrong_password_does_not_sign_in(client, accounts):
    response = sign_in(client, "alice", "guess")
    assert response.status_code == 401
    assert client.get("/ui/sign-in?format=json").json["account"] is None


def test_sign_in_without_form_token_is_refused(client, accounts):
    response = client.post("/ui/sign-in", data=ACCOUNTS | {"username": "alice"})
    assert response.status_code == 403
    assert client.get("/ui/sign-in?format=json").json["account"] is None


def test_sign_in_goes_back_only_to_ui_pages(client, accounts):
    token = form_token_of(client)
    form = {"username": "alice", "password": "wonderland", "csrf_token": token}
    response = client.post("/ui/sign-in?next=https://elsewhere.example/", data=form)
    assert response.status_code == 303 and response.headers["Location"] == "/ui/"


@pytest.mark.parametrize(
    ("page", "link"),
    [
        (
            "/ui/repositories/team/app",
            "/ui/sign-in?next=%2Fui%2Frepositories%2Fteam%2Fapp",
        ),
        ("/ui/?name=a%26b", "/ui/sign-in?next=%2Fui%2F%3Fname%3Da%2526b"),
    ],
)
def test_sign_in_link_leads_back_to_the_page_fully_encoded(client, storage, page, link):
    seed_image(storage, "team/app", "latest")
    assert f'href="{link}"' in client.get(page).get_data(as_text=True)


def test_sign_in_link_brings_the_visitor_back(client, accounts):
    token = form_token_of(client)
    form = {"username": "alice", "password": "wonderland", "csrf_token": token}
    page = "/ui/?name=a%26b"
    response = client.post("/ui/sign-in", query_string={"next": page}, data=form)
    assert response.status_code == 303 and response.headers["Location"] == page


def test_sign_out_forgets_the_account(client, accounts):
    sign_in(client, "alice")
    token = form_token_of(client, "/ui/")
    client.post("/ui/sign-out", data={"csrf_token": token})
    assert client.get("/ui/sign-in?format=json").json["account"] is None


def test_delete_buttons_show_only_for_who_may_delete(client, storage, accounts):
    seed_image(storage, "team/app", "v1")
    anonymous = client.get("/ui/repositories/team/app").get_data(as_text=True)
    sign_in(client, "alice")
    signed_in = client.get("/ui/repositories/team/app").get_data(as_text=True)
    assert "/ui/delete/" not in anonymous and "/ui/delete/team/app" in signed_in


def test_signed_in_deleter_deletes_a_tag(client, storage, accounts):
    image = seed_image(storage, "team/app", "v1")
    storage.tag_manifest("team/app", "v2", image["digest"])
    sign_in(client, "alice")
    response = delete(client, "team/app", "v1")
    assert response.status_code == 303
    assert storage.list_tags("team/app") == ["v2"]


def test_signed_in_deleter_deletes_a_manifest_and_its_tags(client, storage, accounts):
    image = seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    delete(client, "team/app", str(image["digest"]))
    assert not storage.has_manifest("team/app", image["digest"])
    assert storage.list_tags("team/app") == []


def test_confirmation_names_what_goes(client, storage, accounts):
    image = seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    page = client.get(f"/ui/delete/team/app?reference={image['digest']}")
    text = page.get_data(as_text=True)
    assert "with its tags <strong>v1</strong>" in text and 'method="post"' in text


def test_delete_with_a_forged_token_changes_nothing(client, storage, accounts):
    seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    response = delete(client, "team/app", "v1", token="forged")
    assert response.status_code == 403
    assert storage.list_tags("team/app") == ["v1"]


def test_token_of_another_session_is_refused(app, storage, accounts):
    seed_image(storage, "team/app", "v1")
    attacker, victim = app.test_client(), app.test_client()
    sign_in(victim, "alice")
    response = delete(victim, "team/app", "v1", token=form_token_of(attacker))
    assert response.status_code == 403
    assert storage.list_tags("team/app") == ["v1"]


@pytest.mark.parametrize("who", [None, "bob"])
def test_who_may_not_delete_is_refused(client, storage, accounts, who):
    seed_image(storage, "team/app", "v1")
    if who:
        sign_in(client, who)
    response = delete(client, "team/app", "v1", token=form_token_of(client))
    assert response.status_code == 403
    assert storage.list_tags("team/app") == ["v1"]


def test_delete_is_refused_by_get(client, storage, accounts):
    seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")
    client.get("/ui/delete/team/app?reference=v1")
    assert storage.list_tags("team/app") == ["v1"]


def test_no_delete_is_offered_while_deletes_are_disabled(app, storage, accounts):
    app.config["REGISTRY_DELETE_ENABLED"] = False
    seed_image(storage, "team/app", "v1")
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/ui/repositories/team/app").get_data(as_text=True)
    response = delete(client, "team/app", "v1", token=form_token_of(client))
    assert "/ui/delete/" not in page and response.status_code == 405
    assert storage.list_tags("team/app") == ["v1"]


def test_a_delete_from_the_page_is_logged_with_the_account(
    client, storage, accounts, caplog
):
    caplog.set_level(logging.INFO, logger="app.events")
    seed_image(storage, "team/app", "v1")
    sign_in(client, "alice")

    delete(client, "team/app", "v1")

    [record] = [r for r in caplog.records if getattr(r, "event", "") == "tag deleted"]
    assert (record.fields["reference"], record.fields["user"]) == ("v1", "alice")


ODD_TEXT_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "\ud800",
    "config": {"Labels": {"\ud800key": "\udfffvalue"}, "Cmd": ["\udc00"]},
}


def test_half_a_surrogate_pair_in_a_config_shows_as_a_replacement(client, storage):
    seed_image(storage, "odd/text", "v1", config=ODD_TEXT_CONFIG)

    response = client.get("/ui/manifests/odd/text/v1")

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "\ufffdkey=\ufffdvalue" in response.get_data(as_text=True)


def test_a_repository_with_half_a_surrogate_pair_in_a_config_lists(client, storage):
    seed_image(storage, "odd/text", "v1", config=ODD_TEXT_CONFIG)

    response = client.get("/ui/repositories/odd/text")

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "odd/text:v1" in response.get_data(as_text=True)
