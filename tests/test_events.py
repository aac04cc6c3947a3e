"""One log line per state change, with its fields, as text or JSON, no secrets."""

import io
import json
import logging

import pytest

from app import create_app
from app.events import JsonFormatter, TextFormatter, record_event
from tests.conftest import bearer, seed_image, sha256


def events(caplog, name):
    return [r.fields for r in caplog.records if getattr(r, "event", None) == name]


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.INFO, logger="app.events")
    return caplog


def test_a_tag_push_logs_the_manifest_and_the_tag_with_the_user(
    client, storage, logged
):
    image = seed_image(storage, "logged", "v1")
    headers = bearer(client, "logged", "pull,push")

    client.put(
        "/v2/logged/manifests/v2",
        data=image["manifest"],
        headers={
            **headers,
            "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
        },
    )

    [pushed] = events(logged, "manifest pushed")
    [moved] = events(logged, "tag moved")
    assert pushed == {
        "repository": "logged",
        "digest": str(image["digest"]),
        "size": len(image["manifest"]),
        "user": "anonymous",
    }
    assert (moved["reference"], moved["digest"]) == ("v2", str(image["digest"]))


def test_a_committed_blob_is_logged_with_its_size(client, logged):
    headers = bearer(client, "blobs", "pull,push")
    data = b"some blob"
    digest = sha256(data)

    client.post(f"/v2/blobs/blobs/uploads/?digest={digest}", data=data, headers=headers)

    [committed] = events(logged, "blob committed")
    assert committed == {
        "repository": "blobs",
        "digest": digest,
        "size": len(data),
        "user": "anonymous",
    }


def test_a_manifest_delete_logs_its_tags_and_itself(client, storage, logged):
    image = seed_image(storage, "gone", "v1")
    headers = bearer(client, "gone", "delete")

    client.delete(f"/v2/gone/manifests/{image['digest']}", headers=headers)

    [untagged] = events(logged, "tag deleted")
    [deleted] = events(logged, "manifest deleted")
    assert untagged["reference"] == "v1"
    assert deleted["digest"] == str(image["digest"])


def make_record(**fields):
    record = logging.LogRecord("app.events", logging.INFO, "", 0, "%s", ("x",), None)
    record.event = "tag moved"
    record.fields = fields
    return record


def test_json_lines_carry_the_event_fields():
    line = JsonFormatter().format(make_record(repository="r", digest="sha256:1"))

    document = json.loads(line)
    assert document["event"] == "tag moved"
    assert (document["repository"], document["level"]) == ("r", "INFO")


def test_secrets_never_reach_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="app.events")

    record_event("tag moved", repository="r", token="abc", Authorization="Bearer abc")

    [record] = caplog.records
    assert "abc" not in record.getMessage()
    assert set(record.fields) == {"repository", "user"}


@pytest.mark.parametrize(
    "log_format, check",
    [
        ("json", lambda line: json.loads(line)["event"] == "tag moved"),
        ("text", lambda line: "tag moved repository=r user=cli" in line),
    ],
)
def test_the_configured_format_is_written_to_stderr(
    tmp_path, monkeypatch, log_format, check
):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    create_app(
        {
            "REGISTRY_LOG_FORMAT": log_format,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        }
    )

    record_event("tag moved", repository="r")

    assert check(stderr.getvalue().strip())


@pytest.mark.parametrize(
    "setting, value", [("REGISTRY_LOG_FORMAT", "xml"), ("REGISTRY_LOG_LEVEL", "LOUD")]
)
def test_a_bad_log_setting_is_refused_at_start(tmp_path, setting, value):
    with pytest.raises(ValueError, match=setting):
        create_app({setting: value, "REGISTRY_STORAGE_ROOT": str(tmp_path)})


def test_text_lines_are_in_utc():
    formatter = TextFormatter()

    line = formatter.format(make_record())

    assert line.split(" ")[0].endswith("Z")
