"""``flask --app wsgi registry ...``: the operator's commands, and ``flask shell``."""

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.auth.commands import user
from app.context import get_storage
from app.events import quiet_command_line

registry = AppGroup(
    "registry", help="Manage the registry's storage.", callback=quiet_command_line
)
registry.add_command(user)


def init_app(app):
    """Register the commands and fill ``flask shell``'s namespace."""
    app.cli.add_command(registry)
    app.shell_context_processor(shell_namespace)


def shell_namespace():
    """What ``flask shell`` offers: the storage, import and garbage collection."""
    from app.gc import configured_collector
    from app.images import import_image

    storage = current_app.extensions["registry_storage"]
    namespace = {"storage": storage, "import_image": import_image}
    namespace.update(inventory_namespace())
    namespace["collect_garbage"] = configured_collector(current_app.config)
    return namespace


def inventory_namespace():
    """The listing, inspecting, removing and exporting functions, by name."""
    from app import inventory
    from app.export import export_image

    names = ["list_repositories", "list_tags", "inspect_image", "remove_image"]
    namespace = {name: getattr(inventory, name) for name in names}
    namespace.update(disk_usage=inventory.disk_usage, export_image=export_image)
    return namespace


@registry.command("import")
@click.argument("source", type=click.Path(exists=True))
@click.argument("target", required=False)
def import_command(source, target):
    """Import a docker-save tarball or an OCI layout (folder or tar).

    TARGET (NAME:TAG) names the image; without it the names recorded in the
    archive are used.
    """
    from app.images import ImageImportError, import_image

    show_progress = sys.stderr.isatty()
    try:
        imported = import_image(get_storage(), source, target, progress=show_progress)
    except ImageImportError as error:
        raise click.ClickException(str(error)) from None
    for image in imported:
        click.echo(f"{image.name}:{image.tag} {image.digest}")


@registry.command("cert")
@click.argument("hostnames", nargs=-1, required=True)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5080,
    show_default=True,
    help="The port clients reach the registry on, for the certs.d paths shown.",
)
@click.option("--force", is_flag=True, help="Replace the server certificate.")
def cert_command(hostnames, port, force):
    """Write a local CA and a server certificate for HOSTNAMES.

    HOSTNAMES are host names or IP addresses. The CA is made once and reused;
    the command prints the gunicorn flags and where docker and skopeo want it.
    """
    from app.certs import CertificateError, issue_certificates, usage_text

    folder = current_app.config["REGISTRY_TLS_DIR"]
    try:
        issued = issue_certificates(folder, hostnames, force=force)
    except CertificateError as error:
        raise click.ClickException(str(error)) from None
    click.echo(usage_text(issued, port))


@registry.command("export")
@click.argument("reference")
@click.argument("target", type=click.Path())
@click.option(
    "--format",
    "image_format",
    type=click.Choice(["docker", "oci"]),
    default="docker",
    show_default=True,
    help="docker: a tarball for docker load; oci: an OCI image layout.",
)
@click.option("--platform", help="OS/ARCH[/VARIANT] to take from an index.")
def export_command(reference, target, image_format, platform):
    """Export NAME:TAG or NAME@DIGEST to TARGET.

    With --format oci, TARGET is a folder, or a tar when it ends in .tar.
    """
    from app.export import ImageExportError, export_image

    show_progress = sys.stderr.isatty()
    try:
        exported = export_image(
            get_storage(), reference, target, image_format, platform, show_progress
        )
    except ImageExportError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{exported.reference} {exported.digest} {exported.target}")


@registry.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON; sizes in bytes.")
def ls_command(name, as_json):
    """List the repositories, or the tags of repository NAME, with their sizes."""
    from app import inventory

    try:
        if name:
            items = inventory.list_tags(get_storage(), name)
        else:
            items = inventory.list_repositories(get_storage())
    except inventory.InventoryError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(inventory.as_plain_data(items), indent=2))
    else:
        click.echo(inventory.format_listing(items, name), nl=False)


@registry.command("inspect")
@click.argument("reference")
def inspect_command(reference):
    """Show NAME:TAG or NAME@DIGEST: manifest, config, layers, tags, as JSON."""
    from app.inventory import InventoryError, inspect_image

    try:
        details = inspect_image(get_storage(), reference)
    except InventoryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(details, indent=2))


@registry.command("rm")
@click.argument("reference")
@click.option("--yes", is_flag=True, help="Remove a whole repository without asking.")
def rm_command(reference, yes):
    """Remove tag NAME:TAG, manifest NAME@DIGEST with its tags, or repository NAME.

    A repository goes with every tag and manifest it holds, after a question.
    The bytes stay in the store until garbage collection.
    """
    from app.inventory import InventoryError, remove_image

    try:
        if ":" in reference.rpartition("/")[2] or "@" in reference:
            removed = remove_image(get_storage(), reference)
        else:
            removed = remove_whole_repository(reference, yes)
    except InventoryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"removed {removed}")


def remove_whole_repository(text, yes):
    """Ask (unless ``yes``), then remove a repository; return what to print."""
    from app.inventory import count_of, remove_repository, repository_contents

    name, tags, digests = repository_contents(get_storage(), text)
    if not yes:
        held = f"{count_of(len(tags), 'tag')}, {count_of(len(digests), 'manifest')}"
        click.confirm(f"Remove repository {name} ({held})?", abort=True)
    manifests, tags_removed = remove_repository(get_storage(), name)
    removed = f"{count_of(manifests, 'manifest')}, {count_of(tags_removed, 'tag')}"
    return f"repository {name} ({removed})"


@registry.command("du")
@click.option("--json", "as_json", is_flag=True, help="Print JSON; sizes in bytes.")
def du_command(as_json):
    """Show the bytes the store holds: in all, per repository, shared, unused."""
    from app import inventory

    usage = inventory.disk_usage(get_storage())
    if as_json:
        click.echo(json.dumps(inventory.as_plain_data(usage), indent=2))
    else:
        click.echo(inventory.format_usage(usage), nl=False)


@registry.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would go; remove nothing.")
@click.option("--untagged", is_flag=True, help="Also remove manifests no tag reaches.")
@click.option(
    "--grace",
    type=click.IntRange(min=0),
    help="Keep what was modified this many seconds ago or since "
    "(default: REGISTRY_GC_GRACE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def gc_command(dry_run, untagged, grace, as_json):
    """Remove unreferenced blobs, links and manifests, and expired uploads."""
    from app.gc import configured_collector
    from app.storage.errors import StorageError

    options = {"dry_run": dry_run, "untagged": untagged}
    if grace is not None:
        options["grace"] = grace
    if sys.stderr.isatty():
        options["progress"] = lambda line: click.echo(line, err=True)
    try:
        result = configured_collector(current_app.config)(get_storage(), **options)
    except (OSError, StorageError) as error:
        # What the sweep can work around it does; anything else (a folder it
        # may not read, a full disk) stops it, with one line saying what.
        reason = type(error).__name__
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
        where = getattr(error, "filename", None) or getattr(error, "detail", None)
        detail = f": {where}" if where else ""
        message = f"garbage collection stopped: {reason}{detail}"
        raise click.ClickException(message) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo("\n".join(result.summary_lines()))
