"""cache's Corefile parsing: `cache [TTL] [ZONES...] { ... }`, every option (a table of parsers) and its errors."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from pycoredns.plugin import ConfigError, Controller
from pycoredns.plugin import config_atoi as _atoi
from pycoredns.plugin import config_duration as _duration
from pycoredns.util import fqdn

from .handler import Cache
from .metrics import DENIAL, SUCCESS, forget, track

DEFAULT_STALE = 3600.0
MAX_SERVFAIL = 300.0
MAX_FAILURE_RECHECK = 300.0
_EXTRA_DIGITS = re.compile(r"[+-]?[0-9]+\Z")


def _ttl(s: str) -> int:
    v = _atoi(s)
    if v <= 0:
        raise ConfigError(f"cache TTL can not be zero or negative: {v}")
    return v


def _minttl(s: str) -> int:
    v = _atoi(s)
    if v < 0:
        raise ConfigError(f"cache min TTL can not be negative: {v}")
    return v


def _parse_stale(c: Controller, ca: Cache, args: list[str]) -> None:
    """serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | verify [VERIFY_TIMEOUT ...]]."""
    if len(args) > 5:
        raise c.arg_err()
    ca.stale_up_to = DEFAULT_STALE
    if args:
        d = _duration(args[0])
        if d < 0:
            raise ConfigError("invalid negative duration for serve_stale")
        ca.stale_up_to = d
    ca.verify = False
    if len(args) < 2:
        return
    mode = args[1].lower()
    if mode not in ("immediate", "verify"):
        raise ConfigError(f"invalid value for serve_stale refresh mode: {mode}")
    ca.verify = mode == "verify"
    rest = args[2:]
    if ca.verify and rest:
        t = _duration(rest.pop(0))
        if t < 0:
            raise ConfigError("invalid negative verify timeout for serve_stale")
        ca.verify_timeout = t
    if len(rest) > 2:
        raise c.arg_err()
    if rest:
        t = _duration(rest[0])
        if t < 0:
            raise ConfigError("invalid negative response TTL for serve_stale")
        ca.stale_ttl = int(t)
    if len(rest) > 1:
        t = _duration(rest[1])
        if t < 0:
            raise ConfigError("invalid negative failure recheck for serve_stale")
        if t > MAX_FAILURE_RECHECK:
            raise ConfigError("serve_stale failure recheck over 5 minutes is not permitted")
        ca.failure_recheck = t


def _parse_prefetch(c: Controller, ca: Cache, args: list[str]) -> None:
    if not args or len(args) > 3:
        raise c.arg_err()
    amount = _atoi(args[0])
    if amount < 0:
        raise ConfigError(f"prefetch amount should be positive: {amount}")
    ca.prefetch = amount
    if len(args) > 1:
        ca.prefetch_window = _duration(args[1])
    if len(args) > 2:
        pct = args[2]
        last = pct[-1:] or "\x00"
        if last != "%":
            raise ConfigError(f"last character of percentage should be `%`, but is: '{last}'")
        num = _atoi(pct[:-1])
        if num < 10 or num > 90:
            raise ConfigError(f"percentage should fall in range [10, 90]: {num}")
        ca.percentage = num


def parse(c: Controller) -> Cache:
    ca = Cache()
    for _ in c.occurrences(once=True):
        args = c.remaining_args()
        if args and _EXTRA_DIGITS.match(args[0]):
            ca.pttl = ca.nttl = float(_ttl(args[0]))
            args = args[1:]
        ca.zones = c.zones_from(args)
        seen: set[str] = set()
        while c.next_block():
            opt = c.val()
            unknown = c.arg_err()  # CoreDNS's ArgErr for an unknown option names the option, not its arguments
            args = c.remaining_args()
            option = OPTIONS.get(opt)
            if option is None:
                raise unknown
            if opt in ONCE and opt in seen:
                raise ConfigError(f"{opt} can only be specified once")
            seen.add(opt)
            option(c, ca, args)
    if ca.prefer_positive and ca.stale_up_to <= 0:
        raise ConfigError("serve_stale_policy requires serve_stale")
    ca.finish()
    return ca


def _parse_sizes(c: Controller, ca: Cache, args: list[str], kind: str) -> None:
    """success|denial CAPACITY [TTL [MINTTL]]."""
    if not args:
        raise c.arg_err()
    cap = _atoi(args[0])
    ttl = float(_ttl(args[1])) if len(args) > 1 else None
    minttl = float(_minttl(args[2])) if len(args) > 2 else None
    if kind == SUCCESS:
        ca.pcap = cap
        ca.pttl = ca.pttl if ttl is None else ttl
        ca.minpttl = ca.minpttl if minttl is None else minttl
    else:
        ca.ncap = cap
        ca.nttl = ca.nttl if ttl is None else ttl
        ca.minnttl = ca.minnttl if minttl is None else minttl


def _parse_stale_policy(c: Controller, ca: Cache, args: list[str]) -> None:
    if len(args) != 1:
        raise c.arg_err()
    if args[0].lower() != "prefer_positive":
        raise ConfigError(f"invalid serve_stale_policy: {args[0]}")
    ca.prefer_positive = True


def _parse_servfail(c: Controller, ca: Cache, args: list[str]) -> None:
    if len(args) != 1:
        raise c.arg_err()
    d = _duration(args[0])
    if d < 0:
        raise ConfigError("invalid negative ttl for servfail")
    if d > MAX_SERVFAIL:
        raise ConfigError("caching SERVFAIL responses over 5 minutes is not permitted")
    ca.failttl = d


def _parse_disable(c: Controller, ca: Cache, args: list[str]) -> None:
    if not args:
        raise c.arg_err()
    zones = [fqdn(z).lower() for z in args[1:]] or ["."]
    if args[0] == DENIAL:
        ca.nexcept = zones
    elif args[0] == SUCCESS:
        ca.pexcept = zones
    else:
        raise ConfigError(f'cache type for disable must be "{SUCCESS}" or "{DENIAL}"')


def _parse_keepttl(c: Controller, ca: Cache, args: list[str]) -> None:
    if args:
        raise c.arg_err()
    ca.keepttl = True


OPTIONS: dict[str, Callable[[Controller, Cache, list[str]], None]] = {
    SUCCESS: functools.partial(_parse_sizes, kind=SUCCESS),
    DENIAL: functools.partial(_parse_sizes, kind=DENIAL),
    "prefetch": _parse_prefetch,
    "serve_stale": _parse_stale,
    "serve_stale_policy": _parse_stale_policy,
    "servfail": _parse_servfail,
    "disable": _parse_disable,
    "keepttl": _parse_keepttl,
}
"""Block options: each parser gets the option's arguments; the last of a repeated option wins."""
ONCE = frozenset({"serve_stale_policy"})
"""Options that may appear only once."""


def setup(c: Controller) -> None:
    ca = parse(c)
    ca.server = c.server_label()
    c.add_handler(ca)
    track(ca)

    async def _forget() -> None:
        forget(ca)

    c.on_shutdown(_forget)
