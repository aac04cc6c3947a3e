"""OCI conformance, content discovery: tag lists with n, last and Link; referrers.

The referrers content mirrors the conformance suite's: two artifacts typed by
their config, two typed by ``artifactType`` over the empty config, an index
artifact, all attached to one image (some pushed before the image itself),
and one artifact attached to an image that is never pushed.
"""

import pytest

from tests.registry_api import (
    ANNOTATION,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    descriptor,
    digest_of,
    encode,
    error_code,
    image_blobs,
    image_manifest,
)

NAME = "conformance/discovery"
TAGS = ["tagtest0", "test0", "test1", "test2", "test3"]
TYPE_A = "application/vnd.example.peanut.butter"
TYPE_B = "application/vnd.example.strawberry.jam"
TYPE_INDEX = "application/vnd.example.food.stand"
BLOB_A = b"peanut butter on a bagel"
BLOB_B = b"strawberry jam on a croissant"


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


@pytest.fixture
def tagged(registry):
    """One image pushed under every name in TAGS."""
    image = registry.push_image(TAGS[0])
    for tag in TAGS[1:]:
        assert registry.push_manifest(tag, image["manifest"]).status_code == 201
    return image


def tags_of(response):
    return response.json["tags"]


# Listing tags.


def test_tag_list_is_200_in_lexical_order(registry, tagged):
    response = registry.tags()
    assert response.status_code == 200
    assert response.json == {"name": NAME, "tags": TAGS}


def test_n_limits_the_number_of_tags(registry, tagged):
    response = registry.tags(n=2)
    assert (response.status_code, tags_of(response)) == (200, TAGS[:2])


def test_a_partial_page_links_the_next_one(registry, tagged):
    response = registry.tags(n=2)
    assert response.headers["Link"] == (
        f'</v2/{NAME}/tags/list?n=2&last={TAGS[1]}>; rel="next"'
    )


def test_last_starts_after_the_named_tag(registry, tagged):
    response = registry.tags(n=2, last=TAGS[1])
    assert tags_of(response) == TAGS[2:4]


def test_last_without_n_gives_the_rest(registry, tagged):
    assert tags_of(registry.tags(last=TAGS[2])) == TAGS[3:]


def test_following_links_walks_every_tag_once(registry, tagged):
    seen, response = [], registry.tags(n=2)
    seen += tags_of(response)
    while "Link" in response.headers:
        url = response.headers["Link"].split(">")[0].lstrip("<")
        response = registry.request("GET", url)
        seen += tags_of(response)
    assert seen == TAGS


def test_last_page_has_no_link(registry, tagged):
    response = registry.tags(n=2, last=TAGS[3])
    assert tags_of(response) == TAGS[4:]
    assert "Link" not in response.headers


def test_n_equal_to_the_count_has_no_link(registry, tagged):
    response = registry.tags(n=len(TAGS))
    assert (tags_of(response), "Link" in response.headers) == (TAGS, False)


def test_n_zero_is_an_empty_list_without_link(registry, tagged):
    response = registry.tags(n=0)
    assert (tags_of(response), "Link" in response.headers) == ([], False)


@pytest.mark.parametrize("n", ["-1", "two", "1.5"])
def test_n_that_is_not_a_count_is_refused(registry, tagged, n):
    response = registry.tags(n=n)
    assert response.status_code == 400
    assert response.json["errors"]


def test_tag_list_of_an_unknown_repository_is_404(client):
    response = Registry(client, "conformance/nothing").tags()
    assert (response.status_code, error_code(response)) == (404, "NAME_UNKNOWN")


# Listing referrers.


def artifact(subject, annotation, artifact_type=None, config_type=None):
    """Return an artifact manifest attached to ``subject`` (manifest bytes)."""
    if config_type is not None:
        config = descriptor(config_type, BLOB_A)
        layers = [descriptor(OCI_EMPTY, EMPTY_JSON)]
    else:
        config = descriptor(OCI_EMPTY, EMPTY_JSON)
        layers = [descriptor(artifact_type, BLOB_B)]
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document.update(config=config, layers=layers)
    document["subject"] = descriptor(OCI_MANIFEST, subject)
    if annotation is not None:
        document["annotations"] = {ANNOTATION: annotation}
    return encode(document)


@pytest.fixture
def referred(registry):
    """The suite's referrers setup; returns the subject and its referrers."""
    for blob in (EMPTY_JSON, BLOB_A, BLOB_B):
        assert registry.push_blob(blob).status_code == 201
    config, layer = image_blobs()
    subject = encode(image_manifest(config, [layer]))
    never_pushed = encode(image_manifest(image_blobs()[0], [layer]))
    config_a = artifact(subject, "config a", config_type=TYPE_A)
    layer_a = artifact(subject, "layer a", artifact_type=TYPE_A)
    index = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": TYPE_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, config_a),
                descriptor(OCI_MANIFEST, layer_a),
            ],
            "subject": descriptor(OCI_MANIFEST, subject),
            "annotations": {ANNOTATION: "index"},
        }
    )
    config_b = artifact(subject, "config b", config_type=TYPE_B)
    layer_b = artifact(subject, "layer b", artifact_type=TYPE_B)
    orphan = artifact(never_pushed, None, artifact_type=TYPE_B)
    before = [(config_a, OCI_MANIFEST), (layer_a, OCI_MANIFEST), (index, OCI_INDEX)]
    after = [(config_b, OCI_MANIFEST), (layer_b, OCI_MANIFEST)]
    subject_headers = [push_referrer(registry, *each) for each in before]
    for blob in (config, layer):
        registry.push_blob(blob)
    assert registry.push_manifest("tagtest0", subject).status_code == 201
    subject_headers += [push_referrer(registry, *each) for each in after]
    subject_headers.append(push_referrer(registry, orphan, OCI_MANIFEST))
    return {
        "subject": subject,
        "never_pushed": never_pushed,
        "annotations": {
            digest_of(config_a): "config a",
            digest_of(layer_a): "layer a",
            digest_of(index): "index",
            digest_of(config_b): "config b",
            digest_of(layer_b): "layer b",
        },
        "orphan": orphan,
        "subject_headers": subject_headers,
    }


def push_referrer(registry, body, media_type):
    """Push a referrer by its digest; return its OCI-Subject answer."""
    response = registry.push_manifest(digest_of(body), body, media_type)
    assert response.status_code == 201, response.json
    return response.headers.get("OCI-Subject")


def listed(response):
    """Return ``{digest: descriptor}`` of a referrers answer."""
    return {entry["digest"]: entry for entry in response.json["manifests"]}


def test_each_referrer_push_is_answered_with_its_subject(referred):
    subject = digest_of(referred["subject"])
    never_pushed = digest_of(referred["never_pushed"])
    assert referred["subject_headers"] == [subject] * 5 + [never_pushed]


def test_referrers_of_a_digest_without_any_is_an_empty_index(registry, referred):
    response = registry.referrers(digest_of(b"hello world"))
    assert (response.status_code, response.mimetype) == (200, OCI_INDEX)
    assert response.json["manifests"] == []


def test_referrers_list_every_referrer_with_its_annotation(registry, referred):
    response = registry.referrers(digest_of(referred["subject"]))
    assert (response.status_code, response.mimetype) == (200, OCI_INDEX)
    annotations = {
        digest: entry["annotations"] for digest, entry in listed(response).items()
    }
    expected = referred["annotations"]
    assert annotations == {
        digest: {ANNOTATION: text} for digest, text in expected.items()
    }


def test_referrers_carry_their_artifact_type(registry, referred):
    response = registry.referrers(digest_of(referred["subject"]))
    types = sorted(entry["artifactType"] for entry in listed(response).values())
    assert types == sorted([TYPE_A, TYPE_A, TYPE_INDEX, TYPE_B, TYPE_B])


def test_artifact_type_filter_keeps_matching_referrers(registry, referred):
    response = registry.referrers(digest_of(referred["subject"]), artifactType=TYPE_A)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert sorted(
        entry["annotations"][ANNOTATION] for entry in listed(response).values()
    ) == [
        "config a",
        "layer a",
    ]


def test_unfiltered_answer_names_no_filter(registry, referred):
    response = registry.referrers(digest_of(referred["subject"]))
    assert "OCI-Filters-Applied" not in response.headers


def test_referrers_of_a_manifest_never_pushed_are_listed(registry, referred):
    response = registry.referrers(digest_of(referred["never_pushed"]))
    assert response.status_code == 200
    assert list(listed(response)) == [digest_of(referred["orphan"])]


def test_referrer_descriptor_gives_its_type_and_size(registry, referred):
    response = registry.referrers(digest_of(referred["never_pushed"]))
    entry = response.json["manifests"][0]
    assert (entry["mediaType"], entry["size"]) == (
        OCI_MANIFEST,
        len(referred["orphan"]),
    )


def test_referrers_in_an_unknown_repository_are_an_empty_index(client):
    registry = Registry(client, "conformance/nothing")
    response = registry.referrers(digest_of(b"hello world"))
    assert (response.status_code, response.json["manifests"]) == (200, [])


def test_referrers_of_a_malformed_digest_are_400(registry, referred):
    response = registry.referrers("sha256:nothex")
    assert (response.status_code, error_code(response)) == (400, "DIGEST_INVALID")


def test_deleted_referrer_is_no_longer_listed(registry, referred):
    subject = digest_of(referred["subject"])
    gone = next(iter(referred["annotations"]))
    registry.request("DELETE", registry.url(f"manifests/{gone}"))
    assert gone not in listed(registry.referrers(subject))
    assert len(listed(registry.referrers(subject))) == 4
