"""The storage page counts only what the visitor may pull; hidden bytes stay unseen."""

import pytest

from tests.accounts_kit import add_user, make_app
from tests.conftest import seed_image
from tests.test_ui import form_token_of

SHARED_LAYER = b"s" * 1000
HIDDEN_RULES = [{"repository": "secret/*", "pull": ["group:ops"]}]


@pytest.fixture
def app(tmp_path):
    """Public ``one`` shares a layer and its config with hidden ``secret/db``.

    Each holds four blobs (its manifest among them); the store has seven.
    """
    (tmp_path / "groups").write_text("ops: carol\n")
    registry = make_app(tmp_path, REGISTRY_ACCESS_RULES=HIDDEN_RULES)
    add_user(registry, "carol", "pw")
    storage = registry.extensions["registry_storage"]
    seed_image(storage, "one", "v1", layers=(SHARED_LAYER, b"1" * 10))
    seed_image(storage, "secret/db", "v1", layers=(SHARED_LAYER, b"2" * 20))
    storage.write_blob([b"abandoned upload" * 10])
    return registry


def storage_page(client):
    return client.get("/ui/storage?format=json").json


def test_sharing_with_a_hidden_repository_is_not_shown(app):
    [one] = storage_page(app.test_client())["repositories"]
    assert one["name"] == "one"
    assert (one["shared"], one["unique"]) == (0, one["size"])


def test_totals_count_only_the_visible_repositories(app):
    usage = storage_page(app.test_client())
    [one] = usage["repositories"]
    assert (usage["total"], usage["blob_count"]) == (one["size"], 4)
    assert usage["reclaimable"] is None and usage["reclaimable_count"] is None


def test_the_html_page_names_no_store_wide_figure(app):
    page = app.test_client().get("/ui/storage").get_data(as_text=True)
    assert "gc would free" not in page
    assert "of the repositories you may pull" in page


def test_who_may_pull_everything_sees_the_whole_store(app):
    client = app.test_client()
    form = {"username": "carol", "password": "pw", "csrf_token": form_token_of(client)}
    assert client.post("/ui/sign-in", data=form).status_code == 303
    usage = storage_page(client)
    one = next(row for row in usage["repositories"] if row["name"] == "one")
    assert one["shared"] >= len(SHARED_LAYER)
    assert (usage["blob_count"], usage["reclaimable_count"]) == (7, 1)
