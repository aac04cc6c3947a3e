"""What keeps a web UI session valid after it was signed, shared by every worker.

A session cookie names an account, the fingerprint of its password hash, the
time of sign-in and the account's sign-out mark at that time. It is honoured
only while all four still hold: the password is unchanged (a removed user has
none), the session is younger than ``REGISTRY_UI_SESSION_EXPIRY`` seconds, and
no sign-out has happened since. Signing out writes a new random mark for the
account into a small file under ``REGISTRY_UI_SESSIONS_DIR``::

    <dir>/<sha256 of the account name>     the account's current sign-out mark

so a copy of the cookie is refused too, by every worker, and the account's
sessions in other browsers end with it.
"""

import hashlib
import os
import secrets

# What an account that never signed out has as its mark.
NO_SIGN_OUT = ""


class SignOutMarks:
    """Per-account marks that change whenever the account signs out."""

    def __init__(self, folder):
        self.folder = folder

    def path(self, account):
        """Return the mark file of ``account``; hashed, so any name is a safe path."""
        digest = hashlib.sha256(account.encode("utf-8")).hexdigest()
        return os.path.join(self.folder, digest)

    def current(self, account):
        """Return the account's mark, NO_SIGN_OUT if it never signed out."""
        try:
            with open(self.path(account), encoding="ascii") as mark_file:
                return mark_file.read().strip()
        except FileNotFoundError:
            return NO_SIGN_OUT

    def renew(self, account):
        """Give the account a new mark, ending every session signed before now."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        target = self.path(account)
        temporary = f"{target}.{secrets.token_hex(8)}"
        with open(temporary, "w", encoding="ascii") as mark_file:
            mark_file.write(secrets.token_hex(16))
            mark_file.flush()
            os.fsync(mark_file.fileno())
        os.replace(temporary, target)
