"""REGISTRY_INSTANCE_PATH: the instance folder somewhere other than the checkout."""

import os

from app import INSTANCE_PATH_VARIABLE, create_app


def test_the_instance_folder_can_be_named(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    (folder).mkdir()
    (folder / "config.py").write_text("REGISTRY_PAGE_SIZE = 7\n")
    monkeypatch.setenv(INSTANCE_PATH_VARIABLE, str(folder))

    app = create_app()

    assert app.instance_path == str(folder)
    assert app.config["REGISTRY_PAGE_SIZE"] == 7
    for key in ("REGISTRY_STORAGE_ROOT", "REGISTRY_SIGNING_KEY_FILE"):
        assert os.path.dirname(app.config[key]) == str(folder)


def test_a_relative_instance_folder_is_taken_from_the_working_folder(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(INSTANCE_PATH_VARIABLE, "data")

    app = create_app()

    assert app.instance_path == str(tmp_path / "data")
    assert os.path.isfile(tmp_path / "data" / "signing.key")
