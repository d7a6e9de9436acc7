"""Small shared helpers for plugins: zones, fallthrough, Go durations."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds. Raises ValueError with Go's wording."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's Duration.String() for the values plugins print (e.g. `5s`, `1m0s`, `500ms`)."""
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        ms = seconds * 1000
        if ms >= 1:
            return f"{ms:g}ms"
        us = seconds * 1e6
        return f"{us:g}µs" if us >= 1 else f"{seconds * 1e9:g}ns"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    out += f"{s:g}s"
    return out


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def is_subdomain(parent: str, child: str) -> bool:
    """True when `child` equals or is below `parent` (both lowercased FQDNs)."""
    if parent == ".":
        return True
    return child == parent or child.endswith("." + parent)


def zone_match(zones: list[str], name: str) -> str | None:
    """The longest zone of `zones` that contains `name` (CoreDNS plugin.Zones.Matches)."""
    best = None
    for z in zones:
        if is_subdomain(z, name) and (best is None or len(z) > len(best)):
            best = z
    return best


def normalize_zones(args: list[str]) -> list[str]:
    """Zone arguments of a plugin as lowercased FQDNs; CIDRs expand; invalid ones are dropped."""
    from .config import normalize_exact

    out: list[str] = []
    for a in args:
        for z in normalize_exact(a):
            if z not in out:
                out.append(z)
    return out


class Fallthrough:
    """`fallthrough [ZONES...]`: which qnames a plugin passes on instead of answering NXDOMAIN."""

    __slots__ = ("zones",)

    def __init__(self, zones: list[str] | None = None) -> None:
        self.zones: list[str] = list(zones or [])

    def set_zones(self, args: list[str]) -> None:
        self.zones = normalize_zones(args) if args else ["."]

    def through(self, name: str) -> bool:
        return zone_match(self.zones, name) is not None if self.zones else False

    def __bool__(self) -> bool:
        return bool(self.zones)
