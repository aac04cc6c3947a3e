"""The gunicorn settings the registry ships, and the worker's own small parts."""

import runpy
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors

import registry_worker

CONFIG_FILE = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


@pytest.fixture
def shipped_config():
    """gunicorn's Config with the shipped gunicorn.conf.py applied, as gunicorn does."""
    config = Config()
    for name, value in runpy.run_path(str(CONFIG_FILE)).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_shipped_config_sends_blobs_with_sendfile(shipped_config):
    assert shipped_config.sendfile is True


def test_shipped_config_runs_the_registry_worker(shipped_config):
    assert shipped_config.worker_class is registry_worker.RegistryWorker


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_timeout_that_is_not_a_positive_number_stops_the_worker(monkeypatch, value):
    monkeypatch.setenv(registry_worker.HEADER_TIMEOUT_VARIABLE, value)

    with pytest.raises(ValueError, match=registry_worker.HEADER_TIMEOUT_VARIABLE):
        registry_worker.timeout_from_environment(
            registry_worker.HEADER_TIMEOUT_VARIABLE, 10
        )


def test_timeout_from_the_environment_or_its_default(monkeypatch):
    name = registry_worker.BODY_TIMEOUT_VARIABLE
    monkeypatch.delenv(name, raising=False)
    assert registry_worker.timeout_from_environment(name, 7) == 7
    monkeypatch.setenv(name, "2.5")
    assert registry_worker.timeout_from_environment(name, 7) == 2.5


@pytest.mark.parametrize(
    "error,status,code",
    [
        (http_errors.InvalidHeader("CONTENT-LENGTH"), 400, "SIZE_INVALID"),
        (http_errors.InvalidChunkSize(b"zz"), 400, "SIZE_INVALID"),
        (http_errors.UnsupportedTransferCoding("gzip"), 501, "SIZE_INVALID"),
        (http_errors.LimitRequestLine(5000, 4094), 414, "UNSUPPORTED"),
        (http_errors.InvalidRequestLine("x"), 400, "UNSUPPORTED"),
        (RuntimeError("boom"), 500, "UNKNOWN"),
    ],
)
def test_refused_request_gets_its_oci_code(error, status, code):
    assert registry_worker.error_code(status, error) == code
