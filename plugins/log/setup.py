"""log's Corefile parsing: `log [NAMES...] [FORMAT] { class CLASSES... }` (a table of options)."""

from __future__ import annotations

from collections.abc import Callable

from pycoredns import response
from pycoredns.plugin import ConfigError, Controller
from pycoredns.util import fqdn

from .handler import COMBINED, COMMON, Log, Rule

CLASSES = {"success": response.Class.SUCCESS, "denial": response.Class.DENIAL, "error": response.Class.ERROR}


def setup(c: Controller) -> None:
    rules: list[Rule] = []
    for _ in c.occurrences():
        args = c.remaining_args()
        fmt = COMMON
        if len(args) == 0:
            names = ["."]
        elif len(args) == 1:
            names = [args[0]]
        elif "{" in args[-1]:
            fmt = args[-1].replace("{common}", COMMON).replace("{combined}", COMBINED)
            names = args[:-1]
        else:
            names = args
        classes: set[response.Class] = set()
        while c.next_block():
            parse = OPTIONS.get(c.val())
            if parse is None:
                raise c.arg_err()
            parse(c, classes)
        if not classes:
            classes = set(CLASSES.values())
        rules.append(Rule([fqdn(n.lower()) for n in names], fmt, classes))
    c.add_handler(Log(rules))


def _class(c: Controller, classes: set[response.Class]) -> None:
    cargs = c.remaining_args()
    if not cargs:
        raise c.arg_err()
    for a in cargs:
        if a == "all":
            classes |= set(CLASSES.values())
        elif a in CLASSES:
            classes.add(CLASSES[a])
        else:
            raise ConfigError(f"invalid Class: {a}")


OPTIONS: dict[str, Callable[[Controller, set[response.Class]], None]] = {"class": _class}
