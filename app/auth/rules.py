"""Access rules: which callers may pull, push and delete which repositories.

A rule maps a repository name pattern to the callers allowed each action::

    {"repository": "team/*", "pull": ["users"], "push": ["group:dev"],
     "delete": ["user:alice"]}

Patterns are shell globs (``*`` also crosses ``/``). ``{user}``, allowed only
as a pattern's whole first path component, stands for any first component
that no other rule claims as its own first component, literally or by a glob
other than a lone ``*`` (``*-private/*`` claims ``x-private``). So
``{user}/*`` covers every personal namespace (``alice/app``, ``bob/tools``,
also those of users not yet created) but never ``secret/db`` while a rule
such as ``secret/*`` exists, wherever that rule stands.

Callers are ``anyone`` (with or without credentials; ``anonymous`` means the
same), ``users`` (any signed-in user), ``owner`` (the signed-in user whose
name fills ``{user}``; only in rules with ``{user}``), ``user:NAME`` and
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
OWNER = "owner"
PRINCIPAL_PREFIXES = ("user:", "group:")
USER_PLACEHOLDER = "{user}"
GLOB_CHARACTERS = frozenset("*?[")


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

    @property
    def personal(self):
        """Tell whether the pattern's first component is ``{user}``."""
        return self.pattern.split("/", 1)[0] == USER_PLACEHOLDER

    def namespace(self):
        """Return the first component of a pattern without ``{user}``, or None.

        A glob there (``*-private``, ``s?cret``) claims every name it matches;
        a lone ``*`` is a catch-all rather than a namespace, and claims none.
        """
        first = self.pattern.split("/", 1)[0]
        if self.personal or first in ("", "*"):
            return None
        return first

    def owner_of(self, repository, reserved=frozenset()):
        """Return the name filling ``{user}`` if this rule covers ``repository``.

        None when it does not; "" for a matching rule without ``{user}``.
        """
        if not self.personal:
            return "" if fnmatch.fnmatchcase(repository, self.pattern) else None
        owner = repository.split("/", 1)[0]
        if claimed(owner, reserved):
            return None
        pattern = self.pattern.replace(USER_PLACEHOLDER, glob_escape(owner), 1)
        return owner if fnmatch.fnmatchcase(repository, pattern) else None

    def actions_for(self, caller, owner=""):
        """Return the actions this rule allows ``caller`` in ``owner``'s namespace."""
        return {
            action
            for action, principals in self.allowed.items()
            if any(names_caller(principal, caller, owner) for principal in principals)
        }


def names_caller(principal, caller, owner=""):
    """Tell whether one entry of a rule's list names ``caller``."""
    if principal in EVERYONE:
        return True
    if principal == SIGNED_IN:
        return bool(caller.name)
    if principal == OWNER:
        return bool(caller.name) and caller.name == owner
    kind, _, name = principal.partition(":")
    if kind == "user":
        return bool(caller.name) and caller.name == name
    return kind == "group" and name in caller.groups


def claimed(name, namespaces):
    """Tell whether ``name`` is one of ``namespaces`` or matches one that is a glob."""
    return name in namespaces or any(
        GLOB_CHARACTERS & set(namespace) and fnmatch.fnmatchcase(name, namespace)
        for namespace in namespaces
    )


def glob_escape(text):
    """Return ``text`` with glob characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


class AccessRules:
    """The configured rules followed by the default rule."""

    def __init__(self, rules):
        self.rules = rules
        self.namespaces = frozenset(
            rule.namespace() for rule in rules if rule.namespace() is not None
        )

    def allowed_actions(self, caller, repository):
        """Return the set of actions ``caller`` may take on ``repository``."""
        rule, owner = self._deciding_rule(repository)
        return set() if rule is None else rule.actions_for(caller, owner)

    def permitting(self, caller, action, repositories):
        """Return those of ``repositories`` where ``caller`` may take ``action``.

        What a rule allows depends only on the caller and the namespace's
        owner, so it is worked out once for each of those, not once a name.
        """
        if action == "pull" and self.everyone_pulls_everything():
            return list(repositories)
        answers = {}
        kept = []
        for repository in repositories:
            rule, owner = self._deciding_rule(repository)
            if rule is None:
                continue
            key = (id(rule), owner)
            if key not in answers:
                answers[key] = action in rule.actions_for(caller, owner)
            if answers[key]:
                kept.append(repository)
        return kept

    def _deciding_rule(self, repository):
        """Return the first rule covering ``repository`` and its owner, or Nones."""
        for rule in self.rules:
            owner = rule.owner_of(repository, self.namespaces)
            if owner is not None:
                return rule, owner
        return None, None

    def claims_namespace(self, name):
        """Tell whether a rule names ``name`` as a namespace of its own."""
        return claimed(name, self.namespaces)

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
    check_pattern(entry["repository"], allowed, where)
    return Rule(entry["repository"], allowed)


def check_pattern(pattern, allowed, where):
    """Raise RulesError for ``{user}`` anywhere but the whole first component."""
    personal = pattern.split("/", 1)[0] == USER_PLACEHOLDER
    if pattern.count(USER_PLACEHOLDER) > int(personal):
        raise RulesError(
            f"{where}: {USER_PLACEHOLDER} may only be the first path component"
        )
    uses_owner = any(OWNER in principals for principals in allowed.values())
    if uses_owner and not personal:
        raise RulesError(f"{where}: owner needs {USER_PLACEHOLDER}/ in the pattern")


def check_principal(principal, where):
    """Raise RulesError unless ``principal`` names callers in a known way."""
    if not isinstance(principal, str):
        raise RulesError(f"{where}: {principal!r} is not a string")
    if principal in EVERYONE or principal in (SIGNED_IN, OWNER):
        return
    kind, _, name = principal.partition(":")
    if f"{kind}:" not in PRINCIPAL_PREFIXES or not name:
        raise RulesError(
            f"{where}: {principal!r} is not anyone, users, owner, user:NAME"
            " or group:NAME"
        )
