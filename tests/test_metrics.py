"""/metrics: Prometheus text that parses, counting requests, bytes and tokens."""

import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer, make_app, seed_image

HEALTHZ_LABELS = {"route": "health.healthz", "method": "GET", "status": "200"}


def scrape(client):
    """Return {(sample name, sorted labels): value} from GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_text_parses_and_names_the_registry_families(client):
    samples = scrape(client)

    names = {name for name, _labels in samples}
    assert {"registry_storage_bytes", "registry_storage_blobs"} <= names


def test_requests_are_counted_by_route_not_by_path(client, storage):
    seed_image(storage, "counted", "v1")
    headers = bearer(client, "counted")
    before = scrape(client)

    for tag in ("v1", "absent"):
        client.get(f"/v2/counted/manifests/{tag}", headers=headers)

    after = scrape(client)
    route = {"route": "manifests.get_manifest", "method": "GET"}
    name = "registry_http_requests_total"
    ok = value(after, name, status="200", **route) - value(
        before, name, status="200", **route
    )
    missing = value(after, name, status="404", **route) - value(
        before, name, status="404", **route
    )
    assert (ok, missing) == (1, 1)
    assert not any("counted" in str(labels) for _name, labels in after)


def test_bytes_served_and_received_are_counted(client, storage):
    image = seed_image(storage, "sized", "v1")
    headers = bearer(client, "sized", "pull,push")
    before = scrape(client)

    client.get("/v2/sized/manifests/v1", headers=headers)
    client.post(
        "/v2/sized/blobs/uploads/?digest=sha256:" + "0" * 64,
        data=b"twelve bytes",
        headers=headers,
    )

    after = scrape(client)
    served = "registry_http_served_bytes_total"
    received = "registry_http_received_bytes_total"
    manifest = {"route": "manifests.get_manifest"}
    upload = {"route": "uploads.start_upload"}
    assert value(after, served, **manifest) - value(before, served, **manifest) == len(
        image["manifest"]
    )
    assert value(after, received, **upload) - value(before, received, **upload) == 12


def test_pulls_and_uploads_are_timed(client, storage):
    seed_image(storage, "timed", "v1")
    headers = bearer(client, "timed", "pull,push")
    before = scrape(client)

    client.get("/v2/timed/manifests/v1", headers=headers)
    client.post("/v2/timed/blobs/uploads/", headers=headers)

    after = scrape(client)
    pulls = "registry_pull_duration_seconds_count"
    uploads = "registry_upload_duration_seconds_count"
    assert (
        value(after, pulls, kind="manifest") - value(before, pulls, kind="manifest")
        == 1
    )
    assert value(after, uploads, kind="blob") - value(before, uploads, kind="blob") == 1


@pytest.mark.parametrize(
    "query, outcome",
    [({"scope": "repository:a:pull"}, "issued"), ({"service": "other"}, "refused")],
)
def test_tokens_are_counted_by_outcome(client, query, outcome):
    before = scrape(client)

    client.get("/token", query_string=query)

    after = scrape(client)
    name = "registry_tokens_total"
    assert (
        value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == 1
    )


def test_storage_bytes_are_the_sum_of_stored_blobs(client, storage):
    image = seed_image(storage, "stored", "v1")
    parts = [image["manifest"], image["config"], *image["layers"]]

    samples = scrape(client)

    assert value(samples, "registry_storage_bytes") == sum(map(len, parts))
    assert value(samples, "registry_storage_blobs") == len(parts)


def test_methods_a_client_makes_up_share_one_label(client):
    before = scrape(client)

    client.open("/v2/", method="BREW")

    after = scrape(client)
    labels = {"route": "unmatched", "method": "other", "status": "405"}
    name = "registry_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_a_worker_file_not_yet_sized_is_passed_over(client, tmp_path, monkeypatch):
    """A scrape meeting a worker's just-created, still empty file sums the rest."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key(
        "registry_tokens",
        "registry_tokens_total",
        ["outcome"],
        ["issued"],
        "Token requests, by outcome: issued or refused.",
    )
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    samples = scrape(client)

    assert value(samples, "registry_tokens_total", outcome="issued") == 3.0


def test_an_unreadable_store_leaves_the_other_metrics_served(app, client, tmp_path):
    root = tmp_path / "storage"
    client.get("/healthz")
    shutil.rmtree(root)
    root.write_bytes(b"not a folder")

    samples = scrape(client)

    assert value(samples, "registry_http_requests_total", **HEALTHZ_LABELS) >= 1
    assert "registry_storage_bytes" not in {name for name, _labels in samples}


def test_metrics_can_be_switched_off(tmp_path):
    app = make_app(tmp_path, REGISTRY_METRICS_ENABLED=False)
    response = app.test_client().get("/metrics")
    assert response.status_code == 404
    assert b"registry_storage_bytes" not in response.data
