"""Image configs with fields of the wrong type: every reader shows what it can."""

import json

import pytest

from app.ui.image_config import summarize_image_config
from tests.conftest import seed_image
from tests.registry_api import digest_of

NAME = "odd/config"
WRONG_TYPES = {
    "architecture": 5,
    "os": ["x"],
    "config": {
        "Env": "notalist",
        "Labels": ["a"],
        "Cmd": 7,
        "Entrypoint": {"a": 1},
    },
    "history": "x",
    "created": 12345,
}
EMPTY_SUMMARY = summarize_image_config({})


@pytest.mark.parametrize(
    "config, field, expected",
    [
        ({"architecture": 5}, "architecture", None),
        ({"os": ["x"]}, "os", None),
        ({"variant": {"v": 8}}, "variant", None),
        ({"created": 12345}, "created", None),
        ({"config": {"Env": "notalist"}}, "env", []),
        ({"config": {"Env": ["A=1", 2, None]}}, "env", ["A=1"]),
        ({"config": {"Labels": ["a"]}}, "labels", {}),
        ({"config": {"Labels": {"a": "1", "b": 2}}}, "labels", {"a": "1"}),
        ({"config": {"Cmd": 7}}, "cmd", None),
        ({"config": {"Cmd": "sh"}}, "cmd", ["sh"]),
        ({"config": {"Cmd": ["sh", 1]}}, "cmd", None),
        ({"config": {"Entrypoint": {"a": 1}}}, "entrypoint", None),
        ({"config": "settings"}, "cmd", None),
        ({"history": "x"}, "history", []),
        (
            {"history": [1, {"created_by": 2, "empty_layer": "yes"}]},
            "history",
            [{"created": None, "created_by": None, "empty_layer": False}],
        ),
    ],
)
def test_a_field_of_the_wrong_type_reads_as_absent(config, field, expected):
    assert summarize_image_config(config)[field] == expected


@pytest.mark.parametrize("config", [None, [], "text", 5])
def test_a_config_that_is_no_object_reads_as_empty(config):
    assert summarize_image_config(config) == EMPTY_SUMMARY


@pytest.fixture
def odd_image(storage):
    return seed_image(storage, NAME, "v1", config=WRONG_TYPES)


def test_the_manifest_page_shows_what_it_can(client, odd_image):
    response = client.get(f"/ui/manifests/{NAME}/v1")

    assert response.status_code == 200
    layer_digest = digest_of(odd_image["layers"][0])
    assert layer_digest in response.get_data(as_text=True)


def test_the_manifest_twin_gives_each_field_one_type(client, odd_image):
    config = client.get(f"/ui/manifests/{NAME}/v1?format=json").json["config"]

    assert config["env"] == [] and config["labels"] == {} and config["history"] == []
    assert config["cmd"] is config["entrypoint"] is config["created"] is None


def test_the_repository_twin_gives_no_created_time(client, odd_image):
    [tag] = client.get(f"/ui/repositories/{NAME}?format=json").json["tags"]

    assert tag["created"] is None


def test_inspect_gives_each_field_one_type(runner, odd_image):
    result = runner.invoke(args=["registry", "inspect", f"{NAME}:v1"])

    config = json.loads(result.output)["config"]
    assert (config["architecture"], config["os"], config["env"]) == (None, None, [])
    assert (config["cmd"], config["labels"]) == (None, {})
