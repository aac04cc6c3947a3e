"""Tag lists and the catalog: lexical order, ``n`` and ``last``, the Link header."""

import os

import pytest

from tests.conftest import get_token, seed_image

TAGS = ["1.0", "1.1", "2.0", "latest", "v10", "v9"]


@pytest.fixture
def tagged(storage):
    image = seed_image(storage, "a/b", "latest")
    for tag in TAGS:
        storage.tag_manifest("a/b", tag, image["digest"])
    return image


def get_listing(client, url, scope):
    token = get_token(client, scope)
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def list_tags(client, query=""):
    return get_listing(client, f"/v2/a/b/tags/list{query}", "repository:a/b:pull")


def test_tags_are_listed_in_lexical_order(client, tagged):
    response = list_tags(client)
    assert response.json == {"name": "a/b", "tags": sorted(TAGS)}
    assert "Link" not in response.headers


def test_n_limits_the_page_and_links_the_next(client, tagged):
    response = list_tags(client, "?n=2")
    assert response.json["tags"] == ["1.0", "1.1"]
    assert response.headers["Link"] == '</v2/a/b/tags/list?n=2&last=1.1>; rel="next"'


def test_last_continues_after_the_named_tag(client, tagged):
    response = list_tags(client, "?n=2&last=1.1")
    assert response.json["tags"] == ["2.0", "latest"]


def test_last_page_has_no_link(client, tagged):
    response = list_tags(client, "?n=2&last=latest")
    assert response.json["tags"] == ["v10", "v9"]
    assert "Link" not in response.headers


def test_n_zero_gives_an_empty_page(client, tagged):
    assert list_tags(client, "?n=0").json["tags"] == []


# An n of thousands of digits, more than Python converts from text.
HUGE_N = "9" * 5000


@pytest.mark.parametrize(
    "query", [f"?n={HUGE_N}", f"?n={HUGE_N}&other=1"], ids=["n", "n-and-other"]
)
def test_an_n_of_thousands_of_digits_lists_everything(client, tagged, query):
    response = list_tags(client, query)
    assert response.status_code == 200
    assert response.json["tags"] == sorted(TAGS)
    assert "Link" not in response.headers


def test_an_n_of_thousands_of_digits_continues_after_last(client, tagged):
    response = list_tags(client, f"?n={HUGE_N}&last=1.1")
    assert response.json["tags"] == sorted(TAGS)[2:]


def test_an_n_behind_thousands_of_zeros_is_read(client, tagged):
    response = list_tags(client, "?n=" + "0" * 5000 + "2")
    assert response.json["tags"] == ["1.0", "1.1"]
    assert response.headers["Link"] == '</v2/a/b/tags/list?n=2&last=1.1>; rel="next"'


def test_the_catalog_takes_an_n_of_thousands_of_digits(client, storage):
    for name in ["c", "a", "b"]:
        seed_image(storage, name, "v1")
    response = get_listing(client, f"/v2/_catalog?n={HUGE_N}", "registry:catalog:*")
    assert response.status_code == 200
    assert response.json["repositories"] == ["a", "b", "c"]


# Digits beyond ASCII ("²", "①", Arabic-Indic three) pass str.isdigit().
BAD_N = ["?n=-1", "?n=abc", "?n=1.5", "?n=%C2%B2", "?n=%E2%91%A0", "?n=%D9%A3"]


@pytest.mark.parametrize("query", BAD_N)
def test_bad_n_is_refused(client, tagged, query):
    response = list_tags(client, query)
    assert response.status_code == 400
    assert "errors" in response.json


def test_tags_of_an_unknown_repository_are_name_unknown(client):
    response = get_listing(client, "/v2/nope/tags/list", "repository:nope:pull")
    assert response.status_code == 404
    assert response.json["errors"][0]["code"] == "NAME_UNKNOWN"


def test_catalog_lists_every_repository_in_order(client, storage):
    for name in ["zeta", "alpha/one", "alpha", "alpha/one/deep", "mid"]:
        seed_image(storage, name, "v1")
    response = get_listing(client, "/v2/_catalog", "registry:catalog:*")
    assert response.json["repositories"] == sorted(
        ["zeta", "alpha/one", "alpha", "alpha/one/deep", "mid"]
    )


def test_catalog_paginates(client, storage):
    for name in ["c", "a", "b"]:
        seed_image(storage, name, "v1")
    response = get_listing(client, "/v2/_catalog?n=2", "registry:catalog:*")
    assert response.json["repositories"] == ["a", "b"]
    assert response.headers["Link"] == '</v2/_catalog?n=2&last=b>; rel="next"'


def test_catalog_needs_the_catalog_scope(client, storage):
    response = get_listing(client, "/v2/_catalog", "repository:a:pull")
    assert response.status_code == 401


@pytest.mark.parametrize("query", BAD_N)
def test_catalog_refuses_a_bad_n(client, storage, query):
    seed_image(storage, "a", "v1")
    response = get_listing(client, f"/v2/_catalog{query}", "registry:catalog:*")
    assert response.status_code == 400
    assert response.json["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize("make", [os.mkdir, os.mkfifo], ids=["folder", "fifo"])
def test_a_folder_or_fifo_among_the_tags_is_not_listed(client, storage, tagged, make):
    tags = os.path.join(storage.root, "repos", "a", "b", "_tags")
    make(os.path.join(tags, "odd"))
    os.symlink("latest", os.path.join(tags, "alias"))

    assert list_tags(client).json["tags"] == sorted([*TAGS, "alias"])
