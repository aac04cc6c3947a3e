"""The grammar of names, tags and digests."""

import pytest

from app.errors import DigestInvalid, NameInvalid, TagInvalid
from app.reference import parse_digest, validate_name, validate_tag

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    "name", ["a", "hello-world", "a/b/c", "library/busybox", "a.b_c__d---e/f0"]
)
def test_valid_names_are_accepted(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "Foo/bar",
        "a//b",
        "a/",
        "/a",
        "..",
        "a/../b",
        "a/./b",
        "-a",
        "a_",
        "_a",
        "a b",
        "a\x00b",
        "a" * 256,
        "",
        "a/_tags",
    ],
)
def test_invalid_names_are_refused(name):
    with pytest.raises(NameInvalid):
        validate_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A" * 128, "1-2_3.4"])
def test_valid_tags_are_accepted(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", [".hidden", "-x", "A" * 129, "a/b", "", "a:b", ".."])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(TagInvalid):
        validate_tag(tag)


def test_sha256_and_sha512_digests_parse():
    assert str(parse_digest(EMPTY_SHA256)) == EMPTY_SHA256
    assert parse_digest("sha512:" + "ab" * 64).algorithm == "sha512"


@pytest.mark.parametrize(
    "digest",
    [
        EMPTY_SHA256.upper(),
        "sha256:" + "E3" * 32,
        "sha256:abc",
        "sha256:" + "a" * 65,
        "md5:" + "a" * 32,
        "sha256",
        "sha256:../../etc/passwd",
        ":" + "a" * 64,
    ],
)
def test_malformed_digests_are_refused(digest):
    with pytest.raises(DigestInvalid):
        parse_digest(digest)
