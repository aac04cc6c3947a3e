"""A container image registry speaking the OCI Distribution API."""

import os

from flask import Flask

from app import auth, cli, cors, health, metrics, ui, v2
from app.config import load_config
from app.errors import register_error_handlers
from app.events import configure_logging
from app.storage import background, open_storage
from app.v2 import hotpath

# The folder for the instance's config, accounts, keys and storage, when not
# the ``instance`` folder of the checkout.
INSTANCE_PATH_VARIABLE = "REGISTRY_INSTANCE_PATH"


class Registry(Flask):
    """Flask, with an ``OPTIONS`` answer that carries no body and no media type."""

    def make_default_options_response(self):
        """Answer ``OPTIONS`` with 204 and the route's methods in ``Allow``.

        Flask's own answer is a 200 typed as HTML; 204 says there is no content,
        so nothing about it names a type a client could take for a page.
        """
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(test_config=None):
    """Build the application: config, storage, blueprints, errors, CLI."""
    instance_path = os.environ.get(INSTANCE_PATH_VARIABLE) or None
    if instance_path is not None:
        instance_path = os.path.abspath(instance_path)
    app = Registry(__name__, instance_path=instance_path, instance_relative_config=True)
    load_config(app, test_config)
    configure_logging(app.config)
    os.makedirs(app.instance_path, exist_ok=True)

    app.extensions["registry_storage"] = open_storage(app.config)
    # Files a request lets go of are freed once it has ended.
    app.before_request(background.defer_releases)
    app.teardown_request(background.release_deferred)
    app.url_map.merge_slashes = False
    auth.init_app(app)
    v2.init_app(app)
    ui.init_app(app)
    cli.init_app(app)
    cors.init_app(app)
    health.init_app(app)
    metrics.init_app(app)
    register_error_handlers(app)
    hotpath.init_app(app)  # last: it stands in front of all the rest
    return app
