"""`hosts [FILE [ZONES...]] { INLINE-ENTRIES; ttl SECONDS; no_reverse; reload DURATION; fallthrough [ZONES...] }`."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from pycoredns.log import plugin_logger
from pycoredns.plugin import Controller
from pycoredns.util import Fallthrough, atoi, parse_duration

from .handler import Hosts

log = plugin_logger("hosts")

DEFAULT_PATH = "/etc/hosts"
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0


class Options:
    """What a `hosts` block sets."""

    def __init__(self) -> None:
        self.ttl = DEFAULT_TTL
        self.reverse = True
        self.reload = DEFAULT_RELOAD
        self.fall = Fallthrough()
        self.inline: list[str] = []


def _fallthrough(c: Controller, o: Options) -> None:
    o.fall.set_zones(c.remaining_args())


def _no_reverse(c: Controller, o: Options) -> None:
    o.reverse = False


def _set_ttl(c: Controller, o: Options) -> None:
    o.ttl = _ttl(c)


def _set_reload(c: Controller, o: Options) -> None:
    o.reload = _reload(c)


OPTIONS: dict[str, Callable[[Controller, Options], None]] = {
    "fallthrough": _fallthrough, "no_reverse": _no_reverse, "ttl": _set_ttl, "reload": _set_reload,
}


def setup(c: Controller) -> None:
    path = DEFAULT_PATH
    origins: list[str] = list(c.zones)
    o = Options()
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if args:
            path = c.path(args[0])
            _check_file(c, path)
        origins = c.zones_from(args[1:])
        while c.next_block():
            opt = c.val()
            if opt in OPTIONS:
                OPTIONS[opt](c, o)
            elif not o.fall:  # an inline hosts line (CoreDNS: anything before fallthrough)
                o.inline.append(" ".join([opt, *c.remaining_args()]))
            else:
                raise c.err(f"unknown property '{opt}'")
    h = Hosts(path, origins, o.inline, o.ttl, o.reverse, o.reload, o.fall)

    async def load() -> None:
        h.read()

    c.on_startup(load)
    if o.reload > 0:
        c.start_soon(h.reload_loop)
    c.add_handler(h)


def _check_file(c: Controller, path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        log.warning(f"File does not exist: {path}")
        return
    except OSError as e:
        raise c.err(f"unable to access hosts file '{path}': {e.strerror or e}") from None
    except ValueError:  # a NUL byte in the path (Go: invalid argument)
        raise c.err(f"unable to access hosts file '{path}': invalid argument") from None
    if stat.S_ISDIR(st.st_mode):
        log.warning(f'Hosts file "{path}" is a directory')


def _ttl(c: Controller) -> int:
    args = c.remaining_args()
    if not args:
        raise c.err("ttl needs a time in second")
    try:
        ttl = atoi(args[0])
    except ValueError:
        raise c.err("ttl needs a number of second") from None
    if ttl <= 0 or ttl > 65535:
        raise c.err("ttl provided is invalid")
    return ttl


def _reload(c: Controller) -> float:
    args = c.remaining_args()
    if len(args) != 1:
        raise c.err("reload needs a duration (zero seconds to disable)")
    try:
        value = parse_duration(args[0])
    except ValueError:
        raise c.err(f"invalid duration for reload '{args[0]}'") from None
    if value < 0:
        raise c.err(f"invalid negative duration for reload '{args[0]}'")
    return value

