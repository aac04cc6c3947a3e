"""The WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

import sys

from app import create_app

# A worker that exits with this code makes gunicorn stop ("Worker failed to
# boot") instead of starting another; to a shell it is simply a failure.
BOOT_FAILURE_EXIT_CODE = 3

try:
    app = create_app()
except (ValueError, OSError) as error:
    # A setting the registry cannot use (ConfigurationError and its kin all
    # are ValueErrors), or a folder it names that cannot be made.
    print(f"registry: cannot start: {error}", file=sys.stderr)
    sys.exit(BOOT_FAILURE_EXIT_CODE)
