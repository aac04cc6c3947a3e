"""Configuration: defaults, then ``instance/config.py``, then ``REGISTRY_*`` variables.

Every setting the registry reads is named here with its default, so this
module is also the list of what can be configured.
"""

import os

DEFAULTS = {
    # Where blobs, manifests and tags live; None means "storage" in the instance folder.
    "REGISTRY_STORAGE_ROOT": None,
    # Whether a client without credentials is granted pull, and push and delete.
    "REGISTRY_ANONYMOUS_PULL": True,
    "REGISTRY_ANONYMOUS_PUSH": False,
    # The service name that tokens are issued for and checked against.
    "REGISTRY_SERVICE": "registry",
    # Seconds a token stays valid.
    "REGISTRY_TOKEN_EXPIRY": 300,
    # Seconds a refresh token (``docker login``'s identity token) stays valid.
    "REGISTRY_REFRESH_TOKEN_EXPIRY": 90 * 24 * 3600,
    # The htpasswd file of accounts (bcrypt); None means "htpasswd" in the instance.
    "REGISTRY_HTPASSWD_FILE": None,
    # The bcrypt cost of the hashes ``registry user`` writes (4 to 31).
    "REGISTRY_BCRYPT_ROUNDS": 12,
    # The fewest characters a password set by ``registry user`` may have.
    "REGISTRY_PASSWORD_MIN_LENGTH": 8,
    # The groups file (``group: user user`` lines); None means "groups" in the instance.
    "REGISTRY_GROUPS_FILE": None,
    # Who may pull, push and delete what: a list of rules (see the README), first
    # match wins; a string is read as JSON. None leaves only the default rule.
    "REGISTRY_ACCESS_RULES": None,
    # Failed logins a client address may make within the window before a 429.
    "REGISTRY_LOGIN_MAX_FAILURES": 10,
    "REGISTRY_LOGIN_FAILURE_WINDOW": 300,
    # The SQLite file counting failed logins, shared by every worker; None means
    # "login-failures.sqlite" in the instance folder.
    "REGISTRY_LOGIN_FAILURES_FILE": None,
    # The file holding the token signing key; None means "signing.key" in the instance.
    "REGISTRY_SIGNING_KEY_FILE": None,
    # Whether manifests, tags and blobs may be deleted through the API.
    "REGISTRY_DELETE_ENABLED": True,
    # Whether a mount without ``from`` links a blob held anywhere in the store.
    "REGISTRY_AUTOMATIC_MOUNT": True,
    # Seconds an upload may stay idle before it is swept away.
    "REGISTRY_UPLOAD_EXPIRY": 24 * 3600,
    # Seconds during which garbage collection keeps anything written or touched.
    "REGISTRY_GC_GRACE": 3600,
    # Most entries a tag list or catalog page holds when the client names no ``n``.
    "REGISTRY_PAGE_SIZE": 1000,
    # Largest manifest body, in bytes, a push may carry (413 beyond it).
    "REGISTRY_MANIFEST_MAX_SIZE": 4 * 1024 * 1024,
    # Where `registry cert` keeps its CA and server certificate; None means "tls"
    # in the instance folder.
    "REGISTRY_TLS_DIR": None,
    # Origins whose browser pages may call the API (CORS), comma-separated in the
    # environment; "*" for any. Empty: no CORS headers at all.
    "REGISTRY_CORS_ORIGINS": [],
    # Seconds a web UI sign-in lasts, and the folder of per-account sign-out
    # marks every worker checks sessions against; None means "ui-sessions" in
    # the instance folder.
    "REGISTRY_UI_SESSION_EXPIRY": 8 * 3600,
    "REGISTRY_UI_SESSIONS_DIR": None,
    # Whether GET /metrics answers; its figures are the whole store's (operator data).
    "REGISTRY_METRICS_ENABLED": True,
    # What the registry's own log lines let through, and how they are written.
    "REGISTRY_LOG_LEVEL": "INFO",
    "REGISTRY_LOG_FORMAT": "text",
}


# Counts and durations that mean nothing at zero or below.
POSITIVE_SETTINGS = frozenset({
    "REGISTRY_TOKEN_EXPIRY",
    "REGISTRY_REFRESH_TOKEN_EXPIRY",
    "REGISTRY_LOGIN_FAILURE_WINDOW",
    "REGISTRY_UPLOAD_EXPIRY",
    "REGISTRY_PAGE_SIZE",
    "REGISTRY_MANIFEST_MAX_SIZE",
    "REGISTRY_UI_SESSION_EXPIRY",
})  # fmt: skip


class ConfigurationError(ValueError):
    """A setting whose value the registry cannot use; the message names it."""


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def load_config(app, test_config=None):
    """Fill ``app.config`` from the defaults, the instance file, the environment."""
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.update(read_environment(os.environ))
    else:
        app.config.update(test_config)
    fill_instance_paths(app)


def read_environment(environ):
    """Return the ``REGISTRY_*`` settings of an environment, typed as the defaults."""
    settings = {}
    for key, text in environ.items():
        if key.startswith("REGISTRY_"):
            settings[key] = convert(text, DEFAULTS.get(key), key)
    return settings


def convert(text, default, key):
    """Return ``text`` converted to the type of ``default``."""
    if isinstance(default, bool):
        word = text.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ConfigurationError(f"{key} must be true or false, not {text!r}")
        return word in TRUE_WORDS
    if isinstance(default, list):
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(default, int):
        try:
            number = int(text)
        except ValueError:
            message = f"{key} must be a whole number, not {text!r}"
            raise ConfigurationError(message) from None
        if key in POSITIVE_SETTINGS and number <= 0:
            message = f"{key} must be a whole number above 0, not {text!r}"
            raise ConfigurationError(message)
        return number
    return text


def fill_instance_paths(app):
    """Give path settings left unset their place in the instance folder."""
    if not app.config["REGISTRY_STORAGE_ROOT"]:
        app.config["REGISTRY_STORAGE_ROOT"] = os.path.join(app.instance_path, "storage")
    if not app.config["REGISTRY_SIGNING_KEY_FILE"]:
        key_file = os.path.join(app.instance_path, "signing.key")
        app.config["REGISTRY_SIGNING_KEY_FILE"] = key_file
    if not app.config["REGISTRY_TLS_DIR"]:
        app.config["REGISTRY_TLS_DIR"] = os.path.join(app.instance_path, "tls")
    for key, file_name in (
        ("REGISTRY_HTPASSWD_FILE", "htpasswd"),
        ("REGISTRY_GROUPS_FILE", "groups"),
        ("REGISTRY_LOGIN_FAILURES_FILE", "login-failures.sqlite"),
        ("REGISTRY_UI_SESSIONS_DIR", "ui-sessions"),
    ):
        if not app.config[key]:
            app.config[key] = os.path.join(app.instance_path, file_name)
