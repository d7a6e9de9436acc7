"""errors' Corefile parsing: `errors [stdout] { stacktrace; consolidate ... }` (a table of options)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pycoredns.plugin import ConfigError, Controller
from pycoredns.util import parse_duration

from .handler import Errors, Pattern

LEVELS = ("warning", "error", "info", "debug")


def setup(c: Controller) -> None:
    patterns: list[Pattern] = []
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if len(args) > 1 or (args and args[0] != "stdout"):
            raise c.arg_err()
        while c.next_block():
            opt = c.val()
            parse = OPTIONS.get(opt)
            if parse is None:
                raise c.syntax_err(f"Unknown field {opt}")
            parse(c, patterns)
    c.add_handler(Errors(patterns, c.spawn))


def _stacktrace(c: Controller, patterns: list[Pattern]) -> None:
    if c.next_arg():
        raise c.arg_err()


def _consolidate(c: Controller, patterns: list[Pattern]) -> None:
    args = c.remaining_args()
    if len(args) < 2 or len(args) > 4:
        raise c.arg_err()
    try:
        period = parse_duration(args[0])
    except ValueError as e:
        raise c.err(str(e)) from None
    if len(args[1]) > 10000:
        raise c.err("regex too long")
    try:
        re.compile(args[1])
    except re.error as e:
        raise c.err(str(e)) from None
    level, show_first = "error", False
    rest = args[2:]
    if rest and rest[-1] == "show_first":
        show_first = True
        rest = rest[:-1]
    if rest:
        if rest[0] not in LEVELS or len(rest) > 1:
            raise c.err(f"unknown log level argument in consolidate: {rest[0]}")
        level = rest[0]
    if level not in LEVELS:
        raise ConfigError(f"unknown level {level}")
    patterns.append(Pattern(period, args[1], level, show_first))


OPTIONS: dict[str, Callable[[Controller, list[Pattern]], None]] = {
    "stacktrace": _stacktrace,
    "consolidate": _consolidate,
}
