"""The benchmark script runs end to end on tiny sizes and reports every figure.

No timing is asserted: only that each figure was measured and is a number.
A part the script reports missing (no nginx, wrk, docker-registry or dockerd)
skips the test, or fails it when REGISTRY_E2E_REQUIRED=1.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import missing

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--size", "2", "--chunk", "1", "--memory-size", "3", "--image", "3",
    "--tags", "12", "--repos", "15", "--repeat", "2", "--duration", "1",
    "--connections", "4", "--no-install",
]  # fmt: skip
EVERY_FIGURE = {
    "blob_get_1", "blob_get_4", "push_monolithic", "push_chunked", "push_streamed",
    "push_cpu",
    "manifest_get", "manifest_p99", "manifest_get_token", "tag_list", "catalog",
    "docker_push", "docker_pull", "memory_small", "memory_big",
}  # fmt: skip
# The parts each server's figures need, beyond the registry itself.
NEEDS = {
    "distribution": {"distribution"},
    "nginx": {"nginx"},
    "manifest_get": {"wrk"},
    "manifest_p99": {"wrk"},
    "manifest_get_token": {"wrk"},
    "tag_list": {"wrk"},
    "catalog": {"wrk"},
    "docker_push": {"docker"},
    "docker_pull": {"docker"},
}
# Figures counted in clock ticks (10 ms): a push of the tiny size may take less
# CPU than one tick, so zero is a value these can have.
MAY_BE_ZERO = {"push_cpu"}
SERVERS_OF = {
    "blob_get_1": ("registry", "distribution", "nginx"),
    "blob_get_4": ("registry", "distribution", "nginx"),
    "memory_small": ("registry", "distribution", "nginx"),
    "memory_big": ("registry", "distribution", "nginx"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run bench/run.py on tiny sizes and return its JSON report and stdout."""
    output = tmp_path_factory.mktemp("bench") / "bench.json"
    cmd = [sys.executable, "bench/run.py", *TINY, "--json", str(output)]
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text()), done.stdout


def expected_values(report):
    """Yield (figure, server) for every value the report must hold as a number."""
    for row in report["figures"]:
        servers = SERVERS_OF.get(row["key"], ("registry", "distribution"))
        for server in servers:
            needed = NEEDS.get(row["key"], set()) | NEEDS.get(server, set())
            if not needed & set(report["missing"]):
                yield row, server


def test_report_has_every_figure(report):
    data, _ = report
    assert {row["key"] for row in data["figures"]} == EVERY_FIGURE


def test_every_measured_value_is_a_positive_number(report):
    data, _ = report
    checked = list(expected_values(data))
    for row, server in checked:
        value = row[server]
        assert isinstance(value, (int, float)), (row["key"], server)
        assert value > 0 or (value == 0 and row["key"] in MAY_BE_ZERO), (
            row["key"],
            server,
        )
    assert checked


def test_ratios_are_given_where_both_sides_ran(report):
    data, _ = report
    for row in data["figures"]:
        base = row["compared_with"]
        if base and row[base] is not None:
            assert row["ratio"] == pytest.approx(row["registry"] / row[base])
            assert isinstance(row["met"], bool) or row["target"] == "-"


def test_table_lists_every_figure(report):
    data, stdout = report
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == len(EVERY_FIGURE) + 2  # header and rule
    assert all(row["figure"] in stdout for row in data["figures"])


def test_report_names_the_machine(report):
    data, _ = report
    assert data["machine"]["cores"] >= 1 and data["machine"]["gunicorn"]


def test_no_part_is_missing(report):
    data, _ = report
    if data["missing"]:
        missing("; ".join(data["missing"].values()))
    assert data["missing"] == {}


def test_only_pushes_measures_and_lists_the_push_figures(tmp_path):
    output = tmp_path / "bench.json"
    cmd = [sys.executable, "bench/run.py", *TINY, "--only", "pushes"]
    cmd += ["--json", str(output)]
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )

    assert done.returncode == 0, done.stderr[-3000:]
    keys = {row["key"] for row in json.loads(output.read_text())["figures"]}
    assert keys == {"push_monolithic", "push_chunked", "push_streamed", "push_cpu"}
