"""State changes, one log line each, and the logging setup that writes them.

Views, the import and the command line call ``record_event`` when something
in the store changes (a blob committed, a manifest pushed or deleted, a tag
moved, a collection run). The line names the repository, reference, digest,
size and user; ``REGISTRY_LOG_FORMAT`` makes it plain text or one JSON object,
and ``REGISTRY_LOG_LEVEL`` sets what the ``app`` loggers let through.
"""

import json
import logging
import sys
import time

from flask import g, has_request_context

from app.config import ConfigurationError

logger = logging.getLogger(__name__)

PACKAGE_LOGGER = "app"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The order fields are written in; others follow in the order they were given.
FIELD_ORDER = ("repository", "reference", "digest", "size", "user")
# Field names whose values never reach a log line, whoever passes them.
SECRET_FIELDS = frozenset({"authorization", "password", "secret", "token"})
ANONYMOUS = "anonymous"
COMMAND_LINE_USER = "cli"


def configure_logging(config):
    """Give the ``app`` loggers the configured level and one handler on stderr."""
    level = config["REGISTRY_LOG_LEVEL"].upper()
    if not isinstance(logging.getLevelName(level), int):
        message = f"REGISTRY_LOG_LEVEL must be a logging level, not {level!r}"
        raise ConfigurationError(message)
    log_format = config["REGISTRY_LOG_FORMAT"].lower()
    if log_format not in LOG_FORMATS:
        message = f"REGISTRY_LOG_FORMAT must be text or json, not {log_format!r}"
        raise ConfigurationError(message)

    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(level)
    for handler in [h for h in package.handlers if isinstance(h, RegistryHandler)]:
        package.removeHandler(handler)
    handler = RegistryHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    package.addHandler(handler)


def quiet_command_line():
    """Let only warnings and errors through: a command prints its own results."""
    for handler in logging.getLogger(PACKAGE_LOGGER).handlers:
        if isinstance(handler, RegistryHandler):
            handler.setLevel(logging.WARNING)


class RegistryHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is logged."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        """Ignore the stream StreamHandler sets: stderr is looked up each time."""


class TextFormatter(logging.Formatter):
    """``time level logger: message``, in UTC."""

    converter = time.gmtime

    def __init__(self):
        super().__init__(TEXT_FORMAT, "%Y-%m-%dT%H:%M:%SZ")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and event fields."""

    def format(self, record):
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "event", None):
            line["event"] = record.event
            line.update(record.fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def record_event(event, **fields):
    """Log one state change with its fields (None values left out) and the user."""
    fields.setdefault("user", current_user())
    fields = event_fields(fields)
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.info("%s %s", event, text, extra={"event": event, "fields": fields})


def event_fields(fields):
    """Return the fields to log, in FIELD_ORDER first, without None or secrets."""
    ordered = {key: fields[key] for key in FIELD_ORDER if key in fields}
    ordered.update(fields)
    return {
        key: str(value) if not isinstance(value, (int, float)) else value
        for key, value in ordered.items()
        if value is not None and key.lower() not in SECRET_FIELDS
    }


def current_user():
    """Return who makes the current change: the token's subject, or ``cli``."""
    if not has_request_context():
        return COMMAND_LINE_USER
    return g.get("registry_user") or ANONYMOUS
