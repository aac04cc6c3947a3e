"""The WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

import sys

from app import create_app
from app.config import ConfigurationError

# A worker that exits with this code makes gunicorn stop ("Worker failed to
# boot") instead of starting another; to a shell it is simply a failure.
BOOT_FAILURE_EXIT_CODE = 3

try:
    app = create_app()
except ConfigurationError as error:
    print(f"registry: configuration error: {error}", file=sys.stderr)
    sys.exit(BOOT_FAILURE_EXIT_CODE)
