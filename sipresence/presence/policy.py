"""Who may watch whom: the subscription authorization of RFC 5025 (``sub-handling``).

The person decides.  A *rule* says, for one presentity, what happens to one watcher
(``sip:bob@example.com``) or to everyone of a domain (``example.com``):

========  ==============================================================
allow     the subscription is active at once (200)
confirm   202 and a pending subscription, with no state in its NOTIFYs (RFC 3856
          6.6.2), until a rule decides; the owner sees it in watcher information
block     403; a live subscription ends with ``terminated;reason=rejected``
========  ==============================================================

The most specific rule wins: the watcher's own, then its domain's, then the
default of the presentity's domain where one is set (a bridge sets ``confirm`` for
the people of the network it bridges: they decide in their own client), then the
operator's default (``[presence] sub_handling``, ``allow`` unless configured).  A
presentity may always watch itself.  RFC 5025's ``polite-block`` (pretending the
presentity is offline) is not offered: it would need a forged document per watcher.
The rules are persisted with everything else (kind ``rule`` in the journal).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTIONS", "Rule", "Authorization", "rule_target"]

ACTIONS = ("allow", "confirm", "block")


@dataclass(frozen=True, slots=True)
class Rule:
    presentity: str
    watcher: str  # an address of record, or a bare domain for everyone there
    action: str

    @property
    def store_key(self) -> str:
        return f"{self.presentity} {self.watcher}"


def rule_target(watcher: str) -> str:
    """A rule's watcher as compared: ``sip:Bob@Example.com`` -> ``sip:Bob@example.com``
    (the host is case-insensitive, the user part is not), a domain in lower case."""
    scheme, colon, rest = watcher.strip().partition(":")
    if not colon:
        return watcher.strip().lower()  # a domain
    user, at, host = rest.rpartition("@")
    return f"{scheme.lower()}:{user}{at}{host.lower()}"


_SUB_STATES = {"allow": "active", "confirm": "pending", "block": "rejected"}


class Authorization:
    """The rules of every presentity, and the decision for a SUBSCRIBE."""

    def __init__(self, default: str = "allow") -> None:
        if default not in ACTIONS:
            raise ValueError(f"sub_handling must be one of {', '.join(ACTIONS)}")
        self.default = default
        self._rules: dict[str, dict[str, Rule]] = {}
        self._domain_defaults: dict[str, str] = {}

    def set_domain_default(self, domain: str, action: str) -> None:
        """What a watcher no rule names gets for the presentities of *domain*."""
        if action not in ACTIONS:
            raise ValueError(f"sub-handling must be one of {', '.join(ACTIONS)}")
        self._domain_defaults[domain.lower()] = action

    def decide(self, watcher: str, presentity: str) -> str:
        """``allow``, ``confirm`` or ``block`` for *watcher* (an address of record)."""
        if watcher == presentity:
            return "allow"
        rules = self._rules.get(presentity)
        if rules:
            target = rule_target(watcher)
            rule = rules.get(target) or rules.get(target.rpartition("@")[2])
            if rule is not None:
                return rule.action
        if self._domain_defaults:
            domain = presentity.rpartition("@")[2].lower()
            return self._domain_defaults.get(domain, self.default)
        return self.default

    def set(self, presentity: str, watcher: str, action: str) -> Rule:
        if action not in ACTIONS:
            raise ValueError(f"sub-handling must be one of {', '.join(ACTIONS)}")
        rule = Rule(presentity, rule_target(watcher), action)
        self._rules.setdefault(presentity, {})[rule.watcher] = rule
        return rule

    def remove(self, presentity: str, watcher: str) -> Rule | None:
        rules = self._rules.get(presentity, {})
        rule = rules.pop(rule_target(watcher), None)
        if not rules:
            self._rules.pop(presentity, None)
        return rule

    def sub_state(self, watcher: str, presentity: str) -> str:
        """The rule's decision as the notifier's for a new subscription: allow is
        ``active``, confirm ``pending``, block ``rejected``."""
        return _SUB_STATES[self.decide(watcher, presentity)]

    def rules(self, presentity: str) -> list[Rule]:
        return sorted(self._rules.get(presentity, {}).values(), key=lambda r: r.watcher)

    def restore(self, rule: Rule) -> None:
        self._rules.setdefault(rule.presentity, {})[rule.watcher] = rule
