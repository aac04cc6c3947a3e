"""Access rules: which callers may pull, push and delete which repositories.

A rule maps a repository name pattern to the callers allowed each action::

    {"repository": "team/*", "pull": ["users"], "push": ["group:dev"],
     "delete": ["user:alice"]}

Patterns are shell globs (``*`` also crosses ``/``); ``{user}`` in a pattern
stands for the signed-in caller's name, so ``{user}/*`` is everyone's personal
namespace. Callers are ``anyone`` (with or without credentials; ``anonymous``
means the same), ``users`` (any signed-in user), ``user:NAME`` and
``group:NAME``. The first rule whose pattern matches decides; an action a rule
does not name is allowed to no one. After the configured rules comes the
default rule for every repository, shaped by REGISTRY_ANONYMOUS_PULL and
REGISTRY_ANONYMOUS_PUSH: anyone pulls, signed-in users push and delete.
"""

import fnmatch
import re
from dataclasses import dataclass

from app.config import ConfigurationError
from app.documents import DocumentError, parse_document

ACTIONS = ("pull", "push", "delete")
EVERYONE = ("anyone", "anonymous")
SIGNED_IN = "users"
PRINCIPAL_PREFIXES = ("user:", "group:")
USER_PLACEHOLDER = "{user}"


class RulesError(ConfigurationError):
    """A rule in the configuration that does not read."""


@dataclass(frozen=True)
class Caller:
    """Who asks: a user name ("" when anonymous) and that user's groups."""

    name: str = ""
    groups: frozenset = frozenset()


@dataclass(frozen=True)
class Rule:
    """One configured rule: a pattern and who may do each action."""

    pattern: str
    allowed: dict

    def matches(self, caller, repository):
        """Tell whether this rule applies to ``caller`` asking for ``repository``."""
        pattern = self.pattern
        if USER_PLACEHOLDER in pattern:
            if not caller.name:
                return False
            pattern = pattern.replace(USER_PLACEHOLDER, glob_escape(caller.name))
        return fnmatch.fnmatchcase(repository, pattern)

    def actions_for(self, caller):
        """Return the actions this rule allows ``caller``."""
        return {
            action
            for action, principals in self.allowed.items()
            if any(names_caller(principal, caller) for principal in principals)
        }


def names_caller(principal, caller):
    """Tell whether one entry of a rule's list names ``caller``."""
    if principal in EVERYONE:
        return True
    if principal == SIGNED_IN:
        return bool(caller.name)
    kind, _, name = principal.partition(":")
    if kind == "user":
        return bool(caller.name) and caller.name == name
    return kind == "group" and name in caller.groups


def glob_escape(text):
    """Return ``text`` with glob characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


class AccessRules:
    """The configured rules followed by the default rule."""

    def __init__(self, rules):
        self.rules = rules

    def allowed_actions(self, caller, repository):
        """Return the set of actions ``caller`` may take on ``repository``."""
        for rule in self.rules:
            if rule.matches(caller, repository):
                return rule.actions_for(caller)
        return set()

    def everyone_pulls_everything(self):
        """Tell whether every rule lets anyone pull: nothing is hidden from anyone."""
        return all(
            any(principal in EVERYONE for principal in rule.allowed.get("pull", ()))
            for rule in self.rules
        )


def load_rules(config):
    """Return the AccessRules that an application's configuration describes."""
    configured = config.get("REGISTRY_ACCESS_RULES") or []
    if isinstance(configured, str):
        try:
            configured = parse_document(configured)
        except DocumentError as error:
            raise RulesError(f"REGISTRY_ACCESS_RULES is not JSON: {error}") from None
    if not isinstance(configured, list):
        raise RulesError("REGISTRY_ACCESS_RULES must be a list of rules")
    rules = [parse_rule(entry, index) for index, entry in enumerate(configured)]
    return AccessRules(rules + [default_rule(config)])


def default_rule(config):
    """Return the rule for repositories no configured rule names."""
    pull = ["anyone"] if config["REGISTRY_ANONYMOUS_PULL"] else [SIGNED_IN]
    push = ["anyone"] if config["REGISTRY_ANONYMOUS_PUSH"] else [SIGNED_IN]
    return Rule("*", {"pull": pull, "push": push, "delete": push})


def parse_rule(entry, index):
    """Return the Rule a configuration entry spells, or raise RulesError."""
    where = f"REGISTRY_ACCESS_RULES[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("repository"), str):
        raise RulesError(f"{where} must be a dict with a 'repository' pattern")
    unknown = set(entry) - {"repository", *ACTIONS}
    if unknown:
        raise RulesError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    allowed = {}
    for action in ACTIONS:
        principals = entry.get(action, [])
        if not isinstance(principals, list):
            raise RulesError(f"{where}: {action} must be a list")
        for principal in principals:
            check_principal(principal, f"{where}.{action}")
        allowed[action] = tuple(principals)
    return Rule(entry["repository"], allowed)


def check_principal(principal, where):
    """Raise RulesError unless ``principal`` names callers in a known way."""
    if not isinstance(principal, str):
        raise RulesError(f"{where}: {principal!r} is not a string")
    if principal in EVERYONE or principal == SIGNED_IN:
        return
    kind, _, name = principal.partition(":")
    if f"{kind}:" not in PRINCIPAL_PREFIXES or not name:
        raise RulesError(
            f"{where}: {principal!r} is not anyone, users, user:NAME or group:NAME"
        )
