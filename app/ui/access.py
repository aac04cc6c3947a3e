"""Who is signed in to the UI and what they may do: the UI's only calls into auth.

The pages honour the rules the API applies to tokens: a repository is shown
to whoever may pull it, and its tags and manifests may be deleted by whoever
may delete in it. Hooking the UI onto other account or rule functions means
changing the bodies of ``check_password`` and ``may`` below, nothing else.
"""

from flask import session

from app.auth import allowed_actions, check_credentials

ACCOUNT_KEY = "account"


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
    """Return the name of the account signed in to this session, or None."""
    return session.get(ACCOUNT_KEY)


def sign_in(account):
    """Start a fresh session for ``account``, dropping whatever the old one held."""
    session.clear()
    session[ACCOUNT_KEY] = account


def sign_out():
    """Forget the session's account and its form token."""
    session.clear()
