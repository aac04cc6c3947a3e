"""The pages under ``/ui/``; each answers plain JSON with ``?format=json``."""

import logging
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from app.auth import request_host
from app.context import get_storage, require_deletes_enabled
from app.errors import Denied, NameUnknown
from app.events import record_event
from app.reference import Digest, parse_reference, validate_name
from app.ui import access, inventory, usage
from app.ui.csrf import check_form_token, form_token
from app.ui.errors import register_page_errors
from app.v2.manifests import remove_manifest

logger = logging.getLogger(__name__)

blueprint = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static"
)
register_page_errors(blueprint)

# Pages load only their own stylesheet and script, and no other site may frame
# them, so a delete button cannot be clicked from under someone else's page.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@blueprint.get("/")
def list_repositories():
    """List the repositories the visitor may pull, filtered by a part of the name."""
    query = request.args.get("q", "").strip()
    account = access.current_account()

    storage = get_storage()
    names = [
        name
        for name in storage.list_repositories()
        if query.lower() in name and access.may(account, name, "pull")
    ]
    repositories = inventory.summarize_repositories(storage, names)

    return respond("ui/repositories.html", query=query, repositories=repositories)


@blueprint.get("/repositories/<path:name>")
def show_repository(name):
    """Show a repository's tags with their digests, sizes and pull commands."""
    name = validate_name(name)
    require_permission(name, "pull")

    storage = get_storage()
    require_repository(storage, name)
    tags = inventory.describe_tags(storage, name)
    for tag in tags:
        tag["pull"] = f"docker pull {pull_host()}/{name}:{tag['tag']}"

    return respond("ui/repository.html", name=name, tags=tags)


@blueprint.get("/manifests/<path:name>/<reference>")
def show_manifest(name, reference):
    """Show a manifest: its config summary, layers, platforms and referrers."""
    name = validate_name(name)
    reference = parse_reference(reference)
    require_permission(name, "pull")

    storage = get_storage()
    require_repository(storage, name)
    digest = resolve(storage, name, reference)
    manifest = inventory.describe_manifest(storage, name, digest)
    manifest["pull"] = f"docker pull {pull_host()}/{name}@{digest}"

    return respond("ui/manifest.html", **manifest)


@blueprint.get("/storage")
def show_storage():
    """Show the bytes of the repositories the visitor may pull, shared or not."""
    account = access.current_account()

    storage = get_storage()
    names = [
        name
        for name in storage.list_repositories()
        if access.may(account, name, "pull")
    ]
    measured = usage.measure_usage(storage, names)

    return respond("ui/storage.html", **measured)


@blueprint.get("/delete/<path:name>")
def confirm_delete(name):
    """Ask the signed-in visitor to confirm deleting a tag or a manifest."""
    name = validate_name(name)
    reference = parse_reference(request.args.get("reference", ""))
    require_signed_in_permission(name, "delete")
    require_deletes_enabled()

    storage = get_storage()
    require_repository(storage, name)
    digest = resolve(storage, name, reference)
    tags = storage.find_tags(name, digest)

    return respond(
        "ui/delete.html",
        name=name,
        reference=str(reference),
        is_digest=isinstance(reference, Digest),
        digest=str(digest),
        tags=tags,
    )


@blueprint.post("/delete/<path:name>")
def delete_reference(name):
    """Delete a tag, or a manifest with its tags, then go back to the repository."""
    name = validate_name(name)
    reference = parse_reference(request.form.get("reference", ""))
    check_form_token()
    require_signed_in_permission(name, "delete")
    require_deletes_enabled()

    storage = get_storage()
    require_repository(storage, name)
    account = g.registry_user = access.current_account()
    if isinstance(reference, Digest):
        remove_manifest(storage, name, reference)
    else:
        storage.delete_tag(name, reference)
        record_event("tag deleted", repository=name, reference=reference)
    logger.info("deleted from the web UI by %s: %s %s", account, name, reference)

    return redirect(url_for("ui.show_repository", name=name), 303)


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with a username and password, then go back where the visitor was."""
    target = safe_target(request.values.get("next", ""))
    if request.method == "GET":
        account = access.current_account()
        return respond("ui/sign_in.html", account=account, target=target)

    check_form_token()
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username or not access.check_password(username, password):
        failure = "wrong username or password"
        page = render_template("ui/sign_in.html", failure=failure, target=target)
        return page, 401

    access.sign_in(username)
    return redirect(target, 303)


@blueprint.post("/sign-out")
def sign_out():
    """End the session and go back to the repositories."""
    check_form_token()

    access.sign_out()

    return redirect(url_for("ui.list_repositories"), 303)


@blueprint.after_request
def add_security_headers(response):
    """Keep the pages from loading or being framed by anything but this site."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


@blueprint.app_context_processor
def page_context():
    """What every page may use: the visitor, the form token, the delete check."""
    return {
        "current_account": access.current_account(),
        "form_token": form_token,
        "may_delete": may_delete,
        "human_size": inventory.human_size,
        "human_time": inventory.human_time,
        "sign_in_url": sign_in_url,
    }


# Steps the views share.


def respond(template, **data):
    """Answer ``data`` as JSON for ``?format=json``, else as the rendered page."""
    if request.args.get("format") == "json":
        return jsonify(data)
    return render_template(template, **data)


def require_permission(name, action):
    """Raise Denied unless the visitor may ``action`` the repository ``name``."""
    if not access.may(access.current_account(), name, action):
        raise Denied(
            f"sign in as an account that may {action} this repository",
            {"name": name, "action": action},
        )


def require_signed_in_permission(name, action):
    """Raise Denied unless a signed-in visitor may ``action`` the repository."""
    if access.current_account() is None:
        raise Denied("sign in first", {"name": name, "action": action})
    require_permission(name, action)


def may_delete(name):
    """Tell whether the page offers delete buttons for the repository ``name``."""
    account = access.current_account()
    if account is None or not current_app.config["REGISTRY_DELETE_ENABLED"]:
        return False
    return access.may(account, name, "delete")


def require_repository(storage, name):
    """Raise NameUnknown unless the repository exists."""
    if not storage.repository_exists(name):
        raise NameUnknown(detail={"name": name})


def resolve(storage, name, reference):
    """Return the digest a tag points to, or the digest itself if it is one."""
    if isinstance(reference, Digest):
        storage.get_manifest(name, reference)
        return reference
    return storage.resolve_tag(name, reference)


def pull_host():
    """Return the registry's host as the browser reached it, for pull commands."""
    return request_host()


def sign_in_url():
    """Return the sign-in page's address, leading back to this page afterwards."""
    target = request.path.encode()
    if request.query_string:
        target += b"?" + request.query_string
    return url_for("ui.sign_in") + "?" + urlencode({"next": target})


def safe_target(target):
    """Return ``target`` if it is a page of this UI, else the repositories page."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/"):
        return url_for("ui.list_repositories")
    return target
