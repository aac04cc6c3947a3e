"""``flask --app wsgi registry ...``: the operator's commands, and ``flask shell``."""

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.context import get_storage
from app.events import quiet_command_line

registry = AppGroup(
    "registry", help="Manage the registry's storage.", callback=quiet_command_line
)


def init_app(app):
    """Register the commands and fill ``flask shell``'s namespace."""
    app.cli.add_command(registry)
    app.shell_context_processor(shell_namespace)


def shell_namespace():
    """What ``flask shell`` offers: the storage and the import helper."""
    from app.images import import_image

    storage = current_app.extensions["registry_storage"]
    return {"storage": storage, "import_image": import_image}


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
