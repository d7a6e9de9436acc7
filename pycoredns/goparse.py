"""Go's parsers, exactly: strconv.Atoi/ParseUint, time.ParseDuration and Duration.String, net.ParseIP.

CoreDNS reads Corefile arguments with these, and operators see their error texts; one implementation
each, at the bottom of the import graph (the server-block keys use Atoi too). Plugins use them through
`pycoredns.util` (plain values, ValueError) or `pycoredns.plugin` (`config_atoi`, ... raising ConfigError).
"""

from __future__ import annotations

import ipaddress
import re

from .corefile.errors import go_quote

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def atoi(text: str) -> int:
    """Go's strconv.Atoi: optional sign, ASCII digits, int64 range. ValueError with Go's text."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or not body.isascii():
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    n = int(text)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return n


def parse_uint(text: str, func: str = "ParseUint", bits: int = 64) -> int:
    """Go's strconv.ParseUint(text, 10, bits) (`func` names the caller in the text, e.g. ParseInt)."""
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: invalid syntax")
    n = int(text)
    if n >= 1 << bits:
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: value out of range")
    return n


def parse_ip(text: str) -> IP | None:
    """Go's net.ParseIP: an IPv4 or IPv6 address (no zone), IPv4-mapped IPv6 as IPv4 (To4); else None."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


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
