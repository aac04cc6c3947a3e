"""A bad setting stops the command line and gunicorn with one line, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
# gunicorn stops with this code when a worker cannot boot.
WORKER_BOOT_ERROR = 3
BAD_SETTINGS = [
    ("REGISTRY_ANONYMOUS_PULL", "maybe", "REGISTRY_ANONYMOUS_PULL"),
    ("REGISTRY_PAGE_SIZE", "many", "REGISTRY_PAGE_SIZE"),
    ("REGISTRY_PAGE_SIZE", "0", "REGISTRY_PAGE_SIZE"),
    ("REGISTRY_TOKEN_EXPIRY", "-5", "REGISTRY_TOKEN_EXPIRY"),
    ("REGISTRY_UPLOAD_EXPIRY", "0", "REGISTRY_UPLOAD_EXPIRY"),
    ("REGISTRY_ACCESS_RULES", '[{"x": 1}]', "REGISTRY_ACCESS_RULES"),
    ("REGISTRY_ACCESS_RULES", "[" * 5000, "REGISTRY_ACCESS_RULES"),
    ("REGISTRY_LOG_LEVEL", "LOUD", "REGISTRY_LOG_LEVEL"),
    ("REGISTRY_BCRYPT_ROUNDS", "99", "bcrypt rounds"),
]


def run_with(tmp_path, setting, value, *command):
    """Run ``command`` in the project with one bad setting; return the result."""
    environ = {
        **os.environ,
        "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
        setting: value,
    }
    return subprocess.run(
        command,
        cwd=PROJECT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("setting, value, named", BAD_SETTINGS)
def test_the_command_line_names_a_bad_setting_in_one_line(
    tmp_path, setting, value, named
):
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "registry", "ls"]

    result = run_with(tmp_path, setting, value, *flask)

    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and named in result.stderr


def test_a_storage_root_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    root = str(tmp_path / "file" / "storage")
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "registry", "ls"]

    result = run_with(tmp_path, "REGISTRY_STORAGE_ROOT", root, *flask)

    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and root in result.stderr


def test_gunicorn_stops_on_a_bad_setting_without_a_traceback(tmp_path):
    gunicorn = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "-w", "1"]

    result = run_with(tmp_path, "REGISTRY_ANONYMOUS_PULL", "maybe", *gunicorn)

    assert result.returncode == WORKER_BOOT_ERROR
    assert "REGISTRY_ANONYMOUS_PULL must be true or false" in result.stderr
    assert "Traceback" not in result.stderr
