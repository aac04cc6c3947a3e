"""Token issuance (``/token``) and the access check every /v2/ view makes."""

import re
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, jsonify, request

from app.auth.tokens import TokenSigner, allows, load_signing_key, parse_scopes
from app.errors import RegistryError, Unauthorized
from app.metrics import count_tokens

blueprint = Blueprint("auth", __name__)

# A Host header is echoed into the challenge only if it is a plain host[:port].
HOST_PATTERN = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")


class ServiceUnknown(RegistryError):
    code = "DENIED"
    message = "tokens are not issued for that service"
    status = 400


def init_app(app):
    """Load the signing key and register the token endpoint."""
    key = load_signing_key(app.config["REGISTRY_SIGNING_KEY_FILE"])
    app.extensions["registry_tokens"] = TokenSigner(
        key, app.config["REGISTRY_SERVICE"], app.config["REGISTRY_TOKEN_EXPIRY"]
    )
    app.register_blueprint(blueprint)


def get_signer():
    return current_app.extensions["registry_tokens"]


@blueprint.get("/token")
@count_tokens
def issue_token():
    """Issue a token for the asked scopes, narrowed to what the caller may do."""
    service = request.args.get("service")
    scopes = parse_scopes(request.args.getlist("scope"))
    signer = get_signer()

    if service is not None and service != signer.service:
        raise ServiceUnknown(detail={"service": service})
    if request.authorization is not None:
        raise Unauthorized("no accounts are configured on this registry")
    grants = [grant_anonymous(scope) for scope in scopes]

    token = signer.issue("", [grant for grant in grants if grant.actions])
    return jsonify(
        token=token,
        access_token=token,
        expires_in=signer.expiry,
        issued_at=issued_at(),
    )


def grant_anonymous(scope):
    """Return the part of a scope that an anonymous client is granted."""
    config = current_app.config
    allowed = set()
    if config["REGISTRY_ANONYMOUS_PULL"]:
        allowed.add("pull")
    if config["REGISTRY_ANONYMOUS_PUSH"]:
        allowed.update(("push", "delete"))
    if scope.type == "registry" and scope.name == "catalog":
        allowed = {"*"} if "pull" in allowed else set()
    elif scope.type != "repository":
        allowed = set()
    return type(scope)(
        scope.type, scope.name, tuple(a for a in scope.actions if a in allowed)
    )


def issued_at():
    """Return the current time in the RFC 3339 form the token spec uses."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def require_access(resource_type=None, name=None, action=None):
    """Raise Unauthorized unless the request's token grants ``action``.

    Without arguments, any valid token for this service will do (``GET /v2/``).
    """
    scope = f"{resource_type}:{name}:{action}" if resource_type else None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(headers=challenge(scope))
    grant = get_signer().verify(token.strip())
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


def challenge(scope=None, error=None):
    """Return the WWW-Authenticate header pointing the client at ``/token``."""
    host = request.host if HOST_PATTERN.fullmatch(request.host) else "127.0.0.1"
    parts = [
        f'realm="{request.scheme}://{host}/token"',
        f'service="{get_signer().service}"',
    ]
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return {"WWW-Authenticate": "Bearer " + ",".join(parts)}
