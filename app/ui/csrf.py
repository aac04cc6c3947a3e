"""Form tokens that tie every state-changing POST to the session that got the form."""

import hmac
import secrets

from flask import request, session

from app.errors import Denied

TOKEN_KEY = "csrf_token"
FIELD = "csrf_token"


def form_token():
    """Return this session's form token, creating it on first use."""
    if TOKEN_KEY not in session:
        session[TOKEN_KEY] = secrets.token_urlsafe(32)
    return session[TOKEN_KEY]


def check_form_token():
    """Raise Denied unless the posted form carries this session's token."""
    expected = session.get(TOKEN_KEY)
    posted = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(posted.encode(), expected.encode()):
        raise Denied("the form is stale or was not sent from this site; reload it")
