"""Hostile JSON: nested too deep, NaN, not UTF-8. A clear error, never a 500.

Manifests are refused with MANIFEST_INVALID; a config blob, which is opaque,
is stored, and every page and command that reads it still answers; archive
metadata is refused by ``registry import`` in one line.
"""

import json

import pytest

from app.auth.rules import RulesError, load_rules
from app.documents import MAX_NESTING, DocumentError, parse_document
from tests.registry_api import (
    OCI_CONFIG,
    Registry,
    encode,
    error_code,
    image_manifest,
    make_layer,
    tree_state,
)
from tests.test_images import LAYOUT_VERSION, write_tar

NAME = "hostile/json"
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
PAST_LIMIT = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)
UI_PAGES = (
    f"/ui/repositories/{NAME}",
    f"/ui/repositories/{NAME}?format=json",
    f"/ui/manifests/{NAME}/v1",
    f"/ui/manifests/{NAME}/v1?format=json",
)


@pytest.fixture
def registry(client):
    return Registry(client, NAME)


@pytest.mark.parametrize(
    "data",
    [
        DEEP_ARRAY,
        DEEP_OBJECT,
        PAST_LIMIT,
        b"[NaN]",
        b'{"a": Infinity}',
        b"[-Infinity]",
        b'{"a": "\xff"}',
        b"9" * 5000,
        b'{"a": ',
        b"",
    ],
    ids=[
        "deep-array",
        "deep-object",
        "past-limit",
        "nan",
        "infinity",
        "minus-infinity",
        "not-utf8",
        "huge-integer",
        "truncated",
        "empty",
    ],
)
def test_what_is_not_json_raises_document_error(data):
    with pytest.raises(DocumentError):
        parse_document(data)


HUGE_INTEGERS = {
    "positive": b"9" * 5000,
    "negative": b"-" + b"9" * 5000,
    "leading-one": b"1" + b"0" * 4999,
}
# Python's advice that comes with its own error for such integers.
PYTHON_HINTS = ("set_int_max_str_digits", "Exceeds the limit", "4300")


def assert_no_python_hint(text):
    assert not any(hint in text for hint in PYTHON_HINTS), text


@pytest.mark.parametrize("number", HUGE_INTEGERS.values(), ids=HUGE_INTEGERS)
@pytest.mark.parametrize("template", [b"%s", b"[1, %s]", b'{"a": {"b": %s}}'])
def test_an_integer_too_long_is_refused_in_the_registry_s_words(number, template):
    with pytest.raises(DocumentError) as raised:
        parse_document(template % number)

    assert "number too long" in str(raised.value)
    assert_no_python_hint(str(raised.value))


@pytest.mark.parametrize(
    "number", [b"1." + b"9" * 5000, b"1e" + b"9" * 5000, b"-1e-" + b"9" * 5000]
)
def test_a_float_with_thousands_of_digits_is_read_as_before(number):
    assert isinstance(parse_document(b"[%s]" % number)[0], float)


def test_nesting_up_to_the_limit_is_read():
    document = parse_document(b"[" * MAX_NESTING + b"]" * MAX_NESTING)
    assert isinstance(document, list)


def manifest_with_field(raw):
    """Return a maker of a valid manifest's bytes with field ``x`` set to ``raw``."""

    def make(registry):
        body = json.dumps(registry.push_image_blobs()).encode()
        return body[:-1] + b', "x": ' + raw + b"}"

    return make


@pytest.mark.parametrize(
    "make_body",
    [
        lambda registry: DEEP_ARRAY,
        lambda registry: DEEP_OBJECT,
        manifest_with_field(PAST_LIMIT),
        manifest_with_field(b"NaN"),
        lambda registry: b'{"schemaVersion": 2, "mediaType": "\xff"}',
        lambda registry: (
            json.dumps(registry.push_image_blobs()).encode()[:-1] + b', "layers": []}'
        ),
        manifest_with_field(b'{"a": 1, "a": 2}'),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-field",
        "nan",
        "not-utf8",
        "layers-twice",
        "nested-key-twice",
    ],  # fmt: skip
)
def test_a_manifest_that_is_not_json_is_manifest_invalid(registry, storage, make_body):
    body = make_body(registry)
    before = tree_state(storage.root)

    response = registry.push_manifest("v1", body)

    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")
    assert tree_state(storage.root) == before


@pytest.mark.parametrize("number", HUGE_INTEGERS.values(), ids=HUGE_INTEGERS)
@pytest.mark.parametrize("template", [b"%s", b'{"org.example": [%s]}'])
def test_a_manifest_with_an_integer_too_long_says_so(
    registry, storage, number, template
):
    body = manifest_with_field(template % number)(registry)
    before = tree_state(storage.root)

    response = registry.push_manifest("v1", body)

    assert (response.status_code, error_code(response)) == (400, "MANIFEST_INVALID")
    assert "number too long" in response.json["errors"][0]["detail"]["reason"]
    assert_no_python_hint(response.get_data(as_text=True))
    assert tree_state(storage.root) == before


def test_access_rules_with_an_integer_too_long_say_so():
    with pytest.raises(RulesError, match="number too long") as raised:
        load_rules({"REGISTRY_ACCESS_RULES": f"[{HUGE_INTEGERS['negative'].decode()}]"})
    assert_no_python_hint(str(raised.value))


@pytest.fixture
def deep_config_image(registry):
    """An image whose config blob is deeply nested JSON, pushed as v1."""
    layer = make_layer()
    for blob in (DEEP_ARRAY, layer):
        assert registry.push_blob(blob).status_code == 201
    document = image_manifest(DEEP_ARRAY, [layer])
    assert registry.push_manifest("v1", encode(document)).status_code == 201
    return document


@pytest.mark.parametrize("url", UI_PAGES)
def test_pages_of_an_image_with_a_deep_config_answer(client, deep_config_image, url):
    response = client.get(url)

    assert response.status_code == 200
    assert "Traceback" not in response.get_data(as_text=True)


def test_inspect_of_an_image_with_a_deep_config_shows_the_rest(
    runner, deep_config_image
):
    result = runner.invoke(args=["registry", "inspect", f"{NAME}:v1"])

    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    assert details["config"] == {
        "digest": deep_config_image["config"]["digest"],
        "media_type": OCI_CONFIG,
    }


def docker_archive_files(manifest_json):
    return {"manifest.json": manifest_json}


def oci_layout_files(index_json):
    return {"oci-layout": LAYOUT_VERSION, "index.json": index_json}


@pytest.mark.parametrize("make_files", [docker_archive_files, oci_layout_files])
@pytest.mark.parametrize("metadata", [DEEP_ARRAY, b"[NaN]"], ids=["deep", "nan"])
def test_import_refuses_hostile_archive_metadata_in_one_line(
    runner, storage, tmp_path, make_files, metadata
):
    archive = write_tar(tmp_path / "image.tar", make_files(metadata))

    result = runner.invoke(args=["registry", "import", archive, "hello:1"])

    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "not valid JSON" in result.output


@pytest.mark.parametrize("make_files", [docker_archive_files, oci_layout_files])
def test_import_says_an_integer_in_archive_metadata_is_too_long(
    runner, storage, tmp_path, make_files
):
    metadata = b"[%s]" % HUGE_INTEGERS["positive"]
    archive = write_tar(tmp_path / "image.tar", make_files(metadata))

    result = runner.invoke(args=["registry", "import", archive, "hello:1"])

    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "number too long" in result.output
    assert_no_python_hint(result.output)


def test_access_rules_nested_too_deep_are_a_rules_error():
    with pytest.raises(RulesError, match="not JSON"):
        load_rules({"REGISTRY_ACCESS_RULES": DEEP_ARRAY.decode()})
