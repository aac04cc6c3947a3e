"""/healthz and /readyz: answered without a token."""

import shutil

import pytest

from app import create_app


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_200_without_a_token(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_answers_503_when_the_storage_root_is_gone(client, storage):
    shutil.rmtree(storage.root)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json["status"] == "unavailable"


def test_readyz_answers_503_when_the_storage_cannot_be_written(client, storage):
    scratch = f"{storage.root}/tmp"
    shutil.rmtree(scratch)
    open(scratch, "w").close()  # a file where the scratch folder should be

    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_need_no_token_even_without_anonymous_pull(tmp_path, path):
    app = create_app(
        {
            "TESTING": True,
            "REGISTRY_ANONYMOUS_PULL": False,
            "REGISTRY_STORAGE_ROOT": str(tmp_path / "storage"),
            "REGISTRY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        }
    )

    response = app.test_client().get(path)

    assert response.status_code == 200
