"""Token issuance (``/token``) and the access check every /v2/ view makes.

``GET /token`` takes Basic credentials or none (Docker's token protocol);
``POST /token`` takes the OAuth2 form with a password or a refresh token, as
containerd and ``docker login``'s identity token use it. Either answers with a
token granting what was asked, narrowed to what the access rules allow.
"""

import logging
import re
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, jsonify, request

from app.auth.accounts import Accounts
from app.auth.ratelimit import LoginLimiter
from app.auth.rules import Caller, load_rules
from app.auth.tokens import (
    ScopeInvalid,
    TokenSigner,
    allows,
    load_signing_key,
    parse_scopes,
)
from app.errors import RegistryError, TooManyRequests, Unauthorized
from app.metrics import count_tokens

logger = logging.getLogger(__name__)

blueprint = Blueprint("auth", __name__)

# A Host header is echoed into the challenge only if it is a plain host[:port].
HOST_PATTERN = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")
# Where a request with a Host header that is not host[:port] is sent instead,
# when the server's own address is no better.
FALLBACK_HOST = "127.0.0.1"
DEFAULT_PORTS = {"http": "80", "https": "443"}
CATALOG_ACTIONS = {"*"}
TRUE_WORDS = {"1", "true", "yes"}


class ServiceUnknown(RegistryError):
    code = "DENIED"
    message = "tokens are not issued for that service"
    status = 400


class TokenRequestInvalid(RegistryError):
    code = "UNSUPPORTED"
    message = "the token request does not read"
    status = 400


class CredentialsInvalid(Unauthorized):
    message = "incorrect username or password"


class RefreshTokenInvalid(CredentialsInvalid):
    """A refresh token that proves no one: 401 UNAUTHORIZED, as for a password."""

    message = "refresh token is not valid"


class RefreshTokenEnded(RefreshTokenInvalid):
    """A refresh token this registry issued, ended by a password change or removal."""

    message = "refresh token is no longer valid"


def init_app(app):
    """Load the signing key, accounts and rules; register the token endpoint."""
    config = app.config
    key = load_signing_key(config["REGISTRY_SIGNING_KEY_FILE"])
    app.extensions["registry_tokens"] = TokenSigner(
        key,
        config["REGISTRY_SERVICE"],
        config["REGISTRY_TOKEN_EXPIRY"],
        config["REGISTRY_REFRESH_TOKEN_EXPIRY"],
    )
    app.extensions["registry_accounts"] = Accounts(
        config["REGISTRY_HTPASSWD_FILE"],
        config["REGISTRY_GROUPS_FILE"],
        config["REGISTRY_BCRYPT_ROUNDS"],
    )
    app.extensions["registry_rules"] = load_rules(config)
    app.extensions["registry_login_limiter"] = LoginLimiter(
        config["REGISTRY_LOGIN_FAILURES_FILE"],
        config["REGISTRY_LOGIN_MAX_FAILURES"],
        config["REGISTRY_LOGIN_FAILURE_WINDOW"],
    )
    app.register_blueprint(blueprint)


def get_signer():
    return current_app.extensions["registry_tokens"]


def get_accounts():
    return current_app.extensions["registry_accounts"]


@blueprint.get("/token")
@count_tokens
def issue_token():
    """Issue a token for the asked scopes, with Basic credentials or none."""
    check_service(request.args.get("service"))
    scopes = read_scopes(request.args.getlist("scope"))
    offline = request.args.get("offline_token", "").lower() in TRUE_WORDS

    caller = Caller()
    if "Authorization" in request.headers:
        caller = login_with_basic()

    refresh_token = None
    if offline and caller.name:
        refresh_token = new_refresh_token(caller.name)
    return token_response(caller, scopes, refresh_token)


@blueprint.post("/token")
@count_tokens
def issue_oauth_token():
    """Issue a token to an OAuth2 password or refresh_token grant."""
    form = request.form
    check_service(form.get("service"))
    scopes = read_scopes(form.getlist("scope"))
    grant_type = form.get("grant_type")

    if grant_type == "password":
        caller = login(form.get("username", ""), form.get("password", ""))
        refresh_token = None
        if form.get("access_type") == "offline":
            refresh_token = new_refresh_token(caller.name)
    elif grant_type == "refresh_token":
        refresh_token = form.get("refresh_token", "")
        caller = login_with_refresh_token(refresh_token)
    else:
        raise TokenRequestInvalid(
            "grant_type must be password or refresh_token",
            {"grant_type": grant_type},
        )

    return token_response(caller, scopes, refresh_token, oauth=True)


# Who is asking.


def check_service(service):
    """Refuse a token request naming a service other than this registry."""
    if service and service != get_signer().service:
        raise ServiceUnknown(detail={"service": service})


def read_scopes(values):
    """Return the Scopes asked for, or refuse the request when they do not read."""
    try:
        return parse_scopes(values)
    except ScopeInvalid as error:
        raise TokenRequestInvalid(str(error)) from None


def login_with_basic():
    """Return the Caller that the request's Basic credentials prove."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        refuse_until_allowed()
        raise Unauthorized("credentials must be Basic base64(user:password)")
    return login(credentials.username or "", credentials.password or "")


def login(name, password):
    """Return the Caller for a name and password, or answer 401."""
    account = check_credentials(name, password)
    if account is None:
        refuse_credentials()
    logger.debug("login: %s", account.name)
    return Caller(account.name, account.groups)


def check_credentials(name, password):
    """Return the Account a name and password prove, or None, counting a failure.

    Answers 429 instead while the client's address has failed too often.
    """
    reserve_login_attempt()
    account = get_accounts().authenticate(name, password)
    settle_login_attempt(account is not None)
    return account


def login_with_refresh_token(refresh_token):
    """Return the Caller a refresh token names, if the user and password still hold."""
    reserve_login_attempt()
    verified = get_signer().verify_refresh(refresh_token)
    accounts = get_accounts()
    account = accounts.find(verified[0]) if verified else None
    proven = account is not None and accounts.fingerprint(account.name) == verified[1]
    settle_login_attempt(proven)
    if not proven:
        refuse_credentials(RefreshTokenEnded if verified else RefreshTokenInvalid)
    return Caller(account.name, account.groups)


def refuse_until_allowed():
    """Answer 429 while the client's address has failed too often."""
    limiter = current_app.extensions["registry_login_limiter"]
    refuse_for(limiter.retry_after(request.remote_addr or ""))


def reserve_login_attempt():
    """Count a login attempt before checking it, or answer 429 past the limit."""
    limiter = current_app.extensions["registry_login_limiter"]
    refuse_for(limiter.reserve(request.remote_addr or ""))


def refuse_for(wait):
    """Answer 429 with Retry-After when ``wait`` seconds remain, else nothing."""
    if wait:
        raise TooManyRequests(
            "too many failed logins; try again later",
            {"retry_after": wait},
            {"Retry-After": str(wait)},
        )


def settle_login_attempt(succeeded):
    """Give back a reserved attempt that succeeded; log one that failed."""
    address = request.remote_addr or ""
    if succeeded:
        current_app.extensions["registry_login_limiter"].release(address)
    else:
        logger.warning("failed login from %s", address)


def refuse_credentials(error_class=CredentialsInvalid):
    """Answer 401 to credentials that prove no one, saying why with ``error_class``."""
    service = get_signer().service
    raise error_class(headers={"WWW-Authenticate": f'Basic realm="{service}"'})


def new_refresh_token(name):
    """Return a refresh token bound to the user, its password and this service."""
    return get_signer().issue_refresh(name, get_accounts().fingerprint(name))


# What is granted.


def token_response(caller, scopes, refresh_token=None, oauth=False):
    """Answer with a token granting what the rules allow of ``scopes``."""
    signer = get_signer()
    grants = [grant_scope(caller, scope) for scope in scopes]
    grants = [grant for grant in grants if grant.actions]
    token = signer.issue(caller.name, grants)

    body = {
        "token": token,
        "access_token": token,
        "expires_in": signer.expiry,
        "issued_at": issued_at(),
    }
    if oauth:
        body["scope"] = " ".join(str(grant) for grant in grants)
    if refresh_token:
        body["refresh_token"] = refresh_token
    return jsonify(body)


def grant_scope(caller, scope):
    """Return the part of a scope that the rules give ``caller``."""
    if scope.type == "registry" and scope.name == "catalog":
        allowed = CATALOG_ACTIONS
    elif scope.type == "repository":
        allowed = current_app.extensions["registry_rules"].allowed_actions(
            caller, scope.name
        )
    else:
        allowed = set()
    return type(scope)(
        scope.type, scope.name, tuple(a for a in scope.actions if a in allowed)
    )


def issued_at():
    """Return the current time in the RFC 3339 form the token spec uses."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def allowed_actions(account, repository):
    """Return what the rules let ``account`` (a name, "" or None) do in a repository."""
    rules = current_app.extensions["registry_rules"]
    return rules.allowed_actions(caller_named(account), repository)


def pullable_repositories(grant, names):
    """Return those of ``names`` that the grant's subject may pull."""
    rules = current_app.extensions["registry_rules"]
    return rules.permitting(caller_named(grant.get("sub")), "pull", names)


def caller_named(account):
    """Return the Caller the rules see for ``account`` (a name, "" or None)."""
    groups = get_accounts().groups_of(account) if account else frozenset()
    return Caller(account or "", groups)


def automatic_mount_allowed():
    """Tell whether a blob may be mounted from anywhere in the store.

    Only when no repository is hidden from anyone: otherwise a mount without
    ``from`` would show, and hand over, a blob that only a hidden one holds.
    """
    rules = current_app.extensions["registry_rules"]
    return current_app.config["REGISTRY_AUTOMATIC_MOUNT"] and (
        rules.everyone_pulls_everything()
    )


# The check on /v2/.


def require_access(resource_type=None, name=None, action=None):
    """Raise Unauthorized unless the request's token grants ``action``.

    Without arguments, any valid token for this service will do (``GET /v2/``).
    """
    scope = f"{resource_type}:{name}:{action}" if resource_type else None
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        raise Unauthorized(headers=challenge(scope))
    grant = get_signer().verify(token)
    if grant is None:
        raise Unauthorized(
            "invalid or expired token", headers=challenge(scope, "invalid_token")
        )
    if scope and not allows(grant, resource_type, name, action):
        raise Unauthorized(
            "token does not grant the access needed",
            {"scope": scope},
            challenge(scope, "insufficient_scope"),
        )
    g.registry_user = grant.get("sub")
    return grant


def bearer_token(authorization):
    """Return the token of an ``Authorization: Bearer`` value, else None."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def request_host():
    """Return the request's Host if it is host[:port], else where the server listens."""
    if HOST_PATTERN.fullmatch(request.host):
        return request.host
    name = request.environ.get("SERVER_NAME", "")
    port = request.environ.get("SERVER_PORT", "")
    if ":" in name:
        name = f"[{name}]"
    if port and port != DEFAULT_PORTS.get(request.scheme):
        name = f"{name}:{port}"
    return name if HOST_PATTERN.fullmatch(name) else FALLBACK_HOST


def challenge(scope=None, error=None):
    """Return the WWW-Authenticate header pointing the client at ``/token``."""
    parts = [
        f'realm="{request.scheme}://{request_host()}/token"',
        f'service="{get_signer().service}"',
    ]
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return {"WWW-Authenticate": "Bearer " + ",".join(parts)}
