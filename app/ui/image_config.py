"""The parts of an image config a person looks for, whatever the config holds.

To the registry a config is an opaque blob: any JSON, or none, may stand where
an image config should. ``summarize_image_config`` reads what it can and gives
each field one type, so that pages, their JSON twins and the command line
never meet a surprise: a string or None, a list of strings, a map of strings.
A field of the wrong type reads as absent.
"""


def summarize_image_config(config):
    """Return created, platform, entrypoint, cmd, env, labels and history."""
    if not isinstance(config, dict):
        config = {}
    settings = config.get("config")
    if not isinstance(settings, dict):
        settings = {}
    return {
        "created": text_or_none(config.get("created")),
        "architecture": text_or_none(config.get("architecture")),
        "os": text_or_none(config.get("os")),
        "variant": text_or_none(config.get("variant")),
        "entrypoint": command_or_none(settings.get("Entrypoint")),
        "cmd": command_or_none(settings.get("Cmd")),
        "env": strings_of(settings.get("Env")),
        "labels": string_map_of(settings.get("Labels")),
        "history": history_of(config.get("history")),
    }


def text_or_none(value):
    """Return ``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


def command_or_none(value):
    """Return an Entrypoint or Cmd as a list of strings; a lone string is one."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def strings_of(value):
    """Return the strings of a list, dropping anything else; [] for no list."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def string_map_of(value):
    """Return the string-valued entries of an object; {} for no object."""
    if not isinstance(value, dict):
        return {}
    return {key: item for key, item in value.items() if isinstance(item, str)}


def history_of(value):
    """Return the steps of a history list: when, what made it, whether it is empty."""
    if not isinstance(value, list):
        return []
    return [
        {
            "created": text_or_none(step.get("created")),
            "created_by": text_or_none(step.get("created_by")),
            "empty_layer": step.get("empty_layer") is True,
        }
        for step in value
        if isinstance(step, dict)
    ]
