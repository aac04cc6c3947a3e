"""The web UI: server-rendered pages under ``/ui/`` for people with a browser."""

import hashlib
import hmac

from flask import redirect, url_for

from app.auth.tokens import load_signing_key
from app.ui.sessions import SignOutMarks
from app.ui.views import blueprint

# Tells the session key apart from the token key it is derived from.
SESSION_KEY_LABEL = b"registry web UI session"


def init_app(app):
    """Register the pages, point ``/`` at them, and give sessions a key."""
    app.register_blueprint(blueprint, url_prefix="/ui")
    app.add_url_rule("/", "landing", show_landing)
    if not app.secret_key:
        app.secret_key = derive_session_key(app.config["REGISTRY_SIGNING_KEY_FILE"])
    app.extensions["registry_ui_sign_outs"] = SignOutMarks(
        app.config["REGISTRY_UI_SESSIONS_DIR"]
    )
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


def show_landing():
    """Send a browser at the root to the repositories page."""
    return redirect(url_for("ui.list_repositories"))


def derive_session_key(signing_key_file):
    """Return a session key that every worker derives alike from the signing key."""
    key = load_signing_key(signing_key_file)
    return hmac.new(key, SESSION_KEY_LABEL, hashlib.sha256).hexdigest()
