"""Reading JSON that comes from outside: manifests, image configs, archive metadata.

``json.loads`` alone lets hostile bytes through in ways that are not a
``ValueError``, or not JSON at all: nesting deep enough to exhaust the stack
(``RecursionError``), and the constants ``NaN`` and ``Infinity`` that Python
accepts although JSON has no such values. ``parse_document`` turns every way
of failing into one DocumentError, which each caller answers with an error of
its own; and it refuses nesting deeper than any manifest or config needs, so
nothing read here can make later code recurse too deep either. An integer
longer than Python converts (4300 digits by default) is refused as before, in
words of the registry's own rather than Python's advice to raise the limit.
"""

import json

# Deepest nesting of arrays and objects accepted. Manifests and image configs
# nest four or five levels; this leaves ample room for annotations and history.
MAX_NESTING = 64


class DocumentError(ValueError):
    """Bytes that hold no JSON document the registry reads; the message says why."""


def parse_document(data, unique_keys=False):
    """Return the JSON value ``data`` (bytes or text) holds, or raise DocumentError.

    With ``unique_keys``, an object naming one key twice is refused too: JSON
    readers differ on which of the two they keep, so two of them could take
    the same document for different ones.
    """
    hook = reject_duplicate_keys if unique_keys else None
    try:
        document = json.loads(
            data,
            parse_constant=reject_constant,
            parse_int=read_integer,
            object_pairs_hook=hook,
        )
    except RecursionError:
        raise DocumentError(f"nested more than {MAX_NESTING} levels deep") from None
    except DocumentError:
        raise
    except ValueError as error:
        raise DocumentError(str(error)) from None
    check_nesting(document)
    return document


def reject_duplicate_keys(pairs):
    """Return an object's pairs as a dict; DocumentError if a key comes twice."""
    document = {}
    for key, value in pairs:
        if key in document:
            raise DocumentError(f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def read_integer(text):
    """Return the integer ``text`` spells; DocumentError if it is too long to read."""
    try:
        return int(text)
    except ValueError:
        digits = len(text.lstrip("-"))
        raise DocumentError(f"number too long: an integer of {digits} digits") from None


def reject_constant(name):
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``, which JSON does not have."""
    raise DocumentError(f"{name} is not a JSON value")


def check_nesting(document):
    """Raise DocumentError if arrays and objects nest past MAX_NESTING levels."""
    pending = [(document, 1)] if isinstance(document, dict | list) else []
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            raise DocumentError(f"nested more than {MAX_NESTING} levels deep")
        children = value.values() if isinstance(value, dict) else value
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )
