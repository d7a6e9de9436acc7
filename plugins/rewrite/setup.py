"""rewrite's Corefile parsing: every `rewrite` line (or block) of a server block is one rule
(rules.new_rule parses it and names every argument error); all rules form one handler."""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller

from .handler import Rewrite
from .rules import Rule, RuleError, new_rule


def setup(c: Controller) -> None:
    rules: list[Rule] = []
    for _ in c.occurrences():
        args = c.remaining_args()
        if len(args) < 2:
            while c.next_block():  # block form: every token of the block joins one rule
                args.append(c.val())
        try:
            rules.append(new_rule(args))
        except RuleError as e:
            raise ConfigError(str(e)) from None
    c.add_handler(Rewrite(rules))
