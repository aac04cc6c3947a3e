"""Accounts: an htpasswd file of bcrypt hashes, and an optional groups file.

The htpasswd file is Apache's format, one ``name:hash`` a line, the same file
distribution's registry reads, so an existing one can be dropped in::

    alice:$2y$12$...
    bob:$2y$12$...

The groups file names teams for the access rules, one group a line::

    # comments and blank lines are ignored
    dev: alice bob
    ops: carol

Both files are read again when they change on disk, so every worker sees a new
user without a restart. Writes go to a temporary file (mode 0600) renamed
into place. No plain password is ever stored or logged.
"""

import fcntl
import hashlib
import os
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import bcrypt

from app.auth.rules import EVERYONE, OWNER, SIGNED_IN
from app.events import ANONYMOUS, COMMAND_LINE_USER

# What ``user add`` accepts: it must fit a repository path component to own one.
USER_NAME_PATTERN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
# Words the access rules give a meaning (anyone, anonymous, users, owner) and
# the names the change log gives clients without an account and the CLI.
RESERVED_USER_NAMES = frozenset(
    {*EVERYONE, SIGNED_IN, OWNER, ANONYMOUS, COMMAND_LINE_USER}
)
USER_NAME_MAX_LENGTH = 64
# bcrypt reads only the first 72 bytes of a password.
PASSWORD_MAX_BYTES = 72
BCRYPT_ROUNDS = 12
MIN_ROUNDS, MAX_ROUNDS = 4, 31
# The cost factor in a bcrypt hash: $2y$12$...
COST_PATTERN = re.compile(rb"\$2[abxy]?\$([0-9]{2})\$")
# Apache's htpasswd writes the $2y$ prefix; every bcrypt library reads it.
HTPASSWD_PREFIX = b"$2y$"


class AccountError(ValueError):
    """A user name or password the accounts file cannot take."""


@dataclass(frozen=True)
class Account:
    """A signed-in user: the name, and the groups that name it."""

    name: str
    groups: frozenset = frozenset()


class WatchedFile:
    """A file parsed once, and parsed again whenever it changes on disk."""

    def __init__(self, path, parse):
        self.path = path
        self.parse = parse
        self.lock = threading.Lock()
        self.signature = None
        self.value = parse("")

    def read(self):
        """Return the parsed content, reading the file only if it changed."""
        signature = file_signature(self.path)
        with self.lock:
            if signature != self.signature:
                self.value = self.parse(read_text(self.path))
                self.signature = signature
            return self.value


def file_signature(path):
    """Return what changes when a file is rewritten, or None if it is absent."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def read_text(path):
    try:
        with open(path, encoding="utf-8") as text_file:
            return text_file.read()
    except FileNotFoundError:
        return ""


def parse_htpasswd(text):
    """Return ``{name: hash}`` for the lines of an htpasswd file."""
    hashes = {}
    for line in text.splitlines():
        name, separator, hashed = line.strip().partition(":")
        if separator and name and not name.startswith("#"):
            hashes[name] = hashed.encode("ascii", "replace")
    return hashes


def parse_groups(text):
    """Return ``{user: frozenset(groups)}`` for the lines of a groups file."""
    members = {}
    for line in text.splitlines():
        group, separator, names = line.partition("#")[0].partition(":")
        group = group.strip()
        if separator and group:
            for name in names.split():
                members.setdefault(name, set()).add(group)
    return {name: frozenset(groups) for name, groups in members.items()}


class Accounts:
    """The users of the registry: checks passwords, adds and removes users."""

    def __init__(self, htpasswd_file, groups_file, rounds=BCRYPT_ROUNDS):
        if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
            raise AccountError(f"bcrypt rounds must be {MIN_ROUNDS} to {MAX_ROUNDS}")
        self.rounds = rounds
        self.htpasswd = WatchedFile(htpasswd_file, parse_htpasswd)
        self.groups = WatchedFile(groups_file, parse_groups)
        self.dummy_hashes = {}

    def authenticate(self, name, password):
        """Return the Account if ``password`` is the user's, else None.

        A bcrypt check runs whether or not the user exists, so the time taken
        does not tell which user names exist.
        """
        hashes = self.htpasswd.read()
        stored = hashes.get(name)
        dummy = self.dummy_hash(hashes)
        candidate = password.encode("utf-8")[:PASSWORD_MAX_BYTES]
        try:
            matched = bcrypt.checkpw(candidate, stored or dummy)
        except ValueError:
            bcrypt.checkpw(candidate, dummy)
            matched = False
        if not matched or stored is None:
            return None
        return self.find(name)

    def dummy_hash(self, hashes):
        """Return a hash of nothing known, as costly as the file's first hash.

        It is what a missing user's password is checked against, so that check
        takes as long as a real one. Each cost is hashed once, when first needed.
        """
        first = next(iter(hashes.values()), b"")
        match = COST_PATTERN.match(first)
        rounds = int(match[1]) if match else self.rounds
        if rounds not in self.dummy_hashes:
            salt = bcrypt.gensalt(min(max(rounds, MIN_ROUNDS), MAX_ROUNDS))
            self.dummy_hashes[rounds] = bcrypt.hashpw(secrets.token_bytes(16), salt)
        return self.dummy_hashes[rounds]

    def find(self, name):
        """Return the Account named ``name``, or None if there is none."""
        if name not in self.htpasswd.read():
            return None
        return Account(name, self.groups.read().get(name, frozenset()))

    def groups_of(self, name):
        """Return the groups a user belongs to (empty for anonymous)."""
        return self.groups.read().get(name, frozenset())

    def fingerprint(self, name):
        """Return a short digest of the user's hash; it changes with the password."""
        stored = self.htpasswd.read().get(name)
        if stored is None:
            return None
        return hashlib.sha256(stored).hexdigest()[:16]

    def list_names(self):
        """Return the user names in the order of the file."""
        return list(self.htpasswd.read())

    def set_password(self, name, password):
        """Add the user, or change its password."""
        validate_user_name(name)
        hashed = hash_password(password, self.rounds)
        with locked(self.htpasswd.path):
            hashes = parse_htpasswd(read_text(self.htpasswd.path))
            hashes[name] = hashed
            write_htpasswd(self.htpasswd.path, hashes)

    def remove(self, name):
        """Remove the user; return False if there was no such user."""
        with locked(self.htpasswd.path):
            hashes = parse_htpasswd(read_text(self.htpasswd.path))
            if hashes.pop(name, None) is None:
                return False
            write_htpasswd(self.htpasswd.path, hashes)
        return True


def validate_user_name(name):
    """Raise AccountError unless ``name`` is a user name ``user add`` takes."""
    if len(name) > USER_NAME_MAX_LENGTH or not USER_NAME_PATTERN.fullmatch(name):
        raise AccountError(
            f"user names are lowercase letters and digits, with . _ - between "
            f"them, at most {USER_NAME_MAX_LENGTH} characters: {name!r}"
        )
    if name in RESERVED_USER_NAMES:
        raise AccountError(
            f"{name!r} already means something in access rules or in the log; "
            "pick another user name"
        )


def hash_password(password, rounds=BCRYPT_ROUNDS):
    """Return the bcrypt hash of a password, in htpasswd's ``$2y$`` form."""
    encoded = password.encode("utf-8")
    if not encoded:
        raise AccountError("the password is empty")
    if len(encoded) > PASSWORD_MAX_BYTES:
        raise AccountError(f"passwords are at most {PASSWORD_MAX_BYTES} bytes")
    hashed = bcrypt.hashpw(encoded, bcrypt.gensalt(rounds))
    return HTPASSWD_PREFIX + hashed[len(HTPASSWD_PREFIX) :]


@contextmanager
def locked(path):
    """Hold the lock file beside ``path``: one writer at a time, in any process."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(f"{path}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def write_htpasswd(path, hashes):
    """Replace the htpasswd file at once with ``hashes``, readable by owner only."""
    lines = "".join(f"{name}:{hashed.decode()}\n" for name, hashed in hashes.items())
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".htpasswd.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as htpasswd:
            htpasswd.write(lines)
            htpasswd.flush()
            os.fsync(htpasswd.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
