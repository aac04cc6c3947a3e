"""/metrics under real gunicorn: the counts of every worker process are summed."""

import os
import re
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import REPO_ROOT, Server, free_port, spawn, stop, wait_for

PROBES = 12
# A worker retires after this many requests, so PROBES are answered by several.
REQUESTS_PER_WORKER = 5


@pytest.fixture
def two_workers(tmp_path):
    """gunicorn with 2 workers, each replaced after REQUESTS_PER_WORKER requests."""
    server = Server(free_port(), tmp_path / "storage", {})
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
        "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
    }
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    cmd += ["--bind", server.host, "--workers", "2"]
    cmd += [
        "--max-requests",
        str(REQUESTS_PER_WORKER),
        "--access-logformat",
        "%(p)s %(U)s",
    ]
    log = tmp_path / "gunicorn.log"
    proc = spawn(cmd, log, cwd=REPO_ROOT, env=env)
    try:
        wait_for("gunicorn", server.answers, proc, log)
        yield server, log
    finally:
        stop(proc)


def healthz_count(server):
    with server.open("/metrics") as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "registry_http_requests_total" and sample.labels == {
                "route": "health.healthz",
                "method": "GET",
                "status": "200",
            }:
                return sample.value
    return 0


def test_metrics_sum_the_requests_of_every_worker(two_workers):
    server, log = two_workers

    for _ in range(PROBES):
        with server.open("/healthz") as response:
            assert response.status == 200

    pids = set(re.findall(r"<(\d+)> /healthz", log.read_text()))
    assert len(pids) >= 2
    # A request is counted when its worker closes it, which may be just after
    # the client has read the answer: wait for the last one, but never past it.
    deadline = time.monotonic() + 10
    while (count := healthz_count(server)) < PROBES and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count == PROBES
