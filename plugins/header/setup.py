"""`header { query|response set|clear FLAGS... }` with CoreDNS's error texts (no file:line for rules)."""

from __future__ import annotations

from pycoredns import wire
from pycoredns.plugin import ConfigError, Controller

from .handler import Header, Rule

FLAGS = {"aa": wire.AA, "ra": wire.RA, "rd": wire.RD}
ACTIONS = {"set": True, "clear": False}
SELECTORS = ("query", "response")


def new_rules(action: str, args: list[str]) -> list[Rule]:
    """CoreDNS's newRules: one rule per flag, in order (the last rule for a flag wins)."""
    if not action:
        raise ConfigError("setting up rule: no flag action provided")
    if not args:
        raise ConfigError("setting up rule: invalid length for flags, at least one should be provided")
    state = ACTIONS.get(action.lower())
    if state is None:
        raise ConfigError(f"setting up rule: unknown flag action={action.lower()}, should be set or clear")
    rules = []
    for arg in args:
        bit = FLAGS.get(arg.lower())
        if bit is None:
            raise ConfigError(f"setting up rule: unknown/unsupported flag={arg.lower()}")
        rules.append(Rule(bit, state))
    return rules


def setup(c: Controller) -> None:
    while c.next():
        rules: dict[str, list[Rule]] = {s: [] for s in SELECTORS}
        while c.next_block():
            selector = c.val().lower()
            if selector not in rules:
                raise ConfigError(f"setting up rule: invalid selector={selector} should be query or response")
            action = c.val() if c.next_arg() else ""
            rules[selector] += new_rules(action, c.remaining_args())
        if rules["query"] or rules["response"]:
            c.add_handler(Header(rules["query"], rules["response"]))
            return
    raise c.arg_err()
