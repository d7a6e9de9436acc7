"""Small shared helpers for plugins: zones, fallthrough, and Go's parsers (`pycoredns.goparse`)."""

from __future__ import annotations

from .config import normalize_exact
from .goparse import IP, atoi, format_duration, parse_duration, parse_ip, parse_uint

__all__ = ["IP", "Fallthrough", "atoi", "format_duration", "fqdn", "is_subdomain", "normalize_zones",
           "parse_duration", "parse_ip", "parse_uint", "zone_match"]

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
