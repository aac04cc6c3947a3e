"""Who is signed in to the UI and what they may do: the UI's only calls into auth.

The pages honour the rules the API applies to tokens: a repository is shown
to whoever may pull it, and its tags and manifests may be deleted by whoever
may delete in it. Hooking the UI onto other account or rule functions means
changing the bodies of ``check_password`` and ``may`` below, nothing else.
"""

import time

from flask import current_app, g, session

from app.auth import allowed_actions, check_credentials, get_accounts

ACCOUNT_KEY = "account"
FINGERPRINT_KEY = "password"
SIGNED_IN_KEY = "signed_in_at"
MARK_KEY = "sign_out_mark"


def check_password(username, password):
    """Tell whether the credentials sign ``username`` in, as ``/token`` decides.

    A failure counts towards the address's limit of failed logins, and while
    that limit is reached the answer is 429, as from ``/token``.
    """
    return check_credentials(username, password) is not None


def may(account, name, action):
    """Tell whether ``account`` (None when anonymous) may ``action`` repo ``name``."""
    return action in allowed_actions(account, name)


def current_account():
    """Return the name of the account signed in to this session, or None.

    A session that no longer holds (see ``app.ui.sessions``) is emptied.
    """
    if "ui_account" not in g:
        account = session.get(ACCOUNT_KEY)
        if account is not None and not session_holds(account):
            session.clear()
            account = None
        g.ui_account = account
    return g.ui_account


def session_holds(account):
    """Tell whether the session's password, age and sign-out mark still hold."""
    signed_in_at = session.get(SIGNED_IN_KEY)
    if not isinstance(signed_in_at, (int, float)):
        return False
    age = time.time() - signed_in_at
    return (
        0 <= age < current_app.config["REGISTRY_UI_SESSION_EXPIRY"]
        and session.get(FINGERPRINT_KEY) is not None
        and session.get(FINGERPRINT_KEY) == get_accounts().fingerprint(account)
        and session.get(MARK_KEY) == sign_out_marks().current(account)
    )


def sign_in(account):
    """Start a fresh session for ``account``, dropping whatever the old one held."""
    session.clear()
    session[ACCOUNT_KEY] = account
    session[FINGERPRINT_KEY] = get_accounts().fingerprint(account)
    session[SIGNED_IN_KEY] = time.time()
    session[MARK_KEY] = sign_out_marks().current(account)
    g.ui_account = account


def sign_out():
    """End every session of the signed-in account, copies of this one included."""
    account = current_account()
    if account is not None:
        sign_out_marks().renew(account)
    session.clear()
    g.ui_account = None


def sign_out_marks():
    return current_app.extensions["registry_ui_sign_outs"]
