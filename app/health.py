"""``/healthz`` and ``/readyz``: probes for a load balancer or an orchestrator.

Neither asks for a token: they tell nothing about what the registry holds.
"""

import logging

from flask import Blueprint, jsonify

from app.context import get_storage

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


def init_app(app):
    """Register the probes."""
    app.register_blueprint(blueprint)


@blueprint.get("/healthz")
def healthz():
    """Answer 200 whenever the process answers at all."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz():
    """Answer 200 if the storage can be read and written, else 503."""
    try:
        get_storage().check_access()
    except OSError as error:
        logger.warning("storage not ready: %s", error.strerror or error)
        return jsonify(status="unavailable", reason="storage unavailable"), 503

    return jsonify(status="ok")
