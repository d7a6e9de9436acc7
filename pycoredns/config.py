"""Server-block keys -> (transport, zone, port): CoreDNS's ``InspectServerBlocks`` key handling.

A key is ``[SCHEME://]ZONE[:PORT]``. The rules (port from the *last* colon only when an integer
follows, miekg's liberal ``IsDomainName``, CIDR keys expanding to reverse zones on octet/nibble
boundaries, per-transport default ports) are ported from ``plugin/normalize.go``,
``plugin/pkg/cidr`` and ``core/dnsserver/register.go`` because operators rely on the exact zones
and on the exact error texts (``error inspecting server blocks: ...``, no file:line).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import cast

from .corefile.errors import go_quote
from .exceptions import ServerBlockKeyError
from .goparse import atoi

__all__ = [
    "DEFAULT_PORTS",
    "TRANSPORTS",
    "ZoneAddress",
    "follows_rfc1035",
    "fqdn",
    "is_domain_name",
    "normalize_exact",
    "normalize_key",
    "normalize_keys",
    "origins_from_args_or_keys",
    "parse_transport",
    "reverse_zones",
    "rfc1035_warning",
    "split_host_port",
]

# Checked in this order, as parse.Transport does ("https3://" is not a prefix match of "https://").
TRANSPORTS: tuple[str, ...] = ("tls", "dns", "quic", "grpc", "https3", "https", "unix")
DEFAULT_PORTS: dict[str, int] = {"tls": 853, "quic": 853, "grpc": 443, "https": 443, "https3": 443}


class _KeyError(Exception):
    """Unwrapped normalize.go error text (SplitHostPort's errors are also used by plugins)."""


@dataclass(frozen=True, slots=True)
class ZoneAddress:
    """One zone a server block serves: what CoreDNS calls a ``zoneAddr``."""

    transport: str
    zone: str
    port: int

    def key(self) -> str:
        """The canonical key plugins see as ServerBlockKeys, e.g. ``dns://example.org.:53``."""
        port = "" if self.transport == "unix" and self.port == 0 else str(self.port)
        return f"{self.transport}://{self.zone}:{port}"

    def __str__(self) -> str:
        return self.key()


def parse_transport(s: str) -> tuple[str, str]:
    """Strip a ``scheme://`` prefix; no (known) scheme means plain ``dns``."""
    for t in TRANSPORTS:
        prefix = t + "://"
        if s.startswith(prefix):
            return t, s[len(prefix) :]
    return "dns", s


def _atoi(s: str) -> int | None:
    """Go's strconv.Atoi, or None where it fails (the key's port is then part of the zone)."""
    try:
        return atoi(s)
    except ValueError:
        return None


def _is_fqdn(s: str) -> bool:
    """miekg IsFqdn: ends in a dot that is not escaped by an odd run of backslashes."""
    if not s.endswith("."):
        return False
    body = s[:-1]
    run = len(body) - len(body.rstrip("\\"))
    return run % 2 == 0


def fqdn(s: str) -> str:
    """miekg dns.Fqdn: append the root dot unless already fully qualified."""
    return s if _is_fqdn(s) else s + "."


def is_domain_name(s: str) -> bool:
    """miekg dns.IsDomainName: label lengths, no empty labels, total <= 255; any bytes allowed."""
    if not s:
        return False
    b = fqdn(s).encode("utf-8", errors="surrogatepass")
    if b"\\" not in b:  # the usual key: split instead of the byte loop below (same verdicts)
        if b == b".":
            return True
        labels = b[:-1].split(b".")
        return all(0 < len(x) < 64 for x in labels) and len(b) <= 256
    off = begin = 0
    was_dot = False
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 0x5C:  # backslash
            if off + 1 > 256:
                return False
            rest = b[i + 1 : i + 4]
            if len(rest) == 3 and all(0x30 <= x <= 0x39 for x in rest):
                i += 3
                begin += 3
            else:
                i += 1
                begin += 1
            was_dot = False
        elif c == 0x2E:  # dot
            if i == 0 and n > 1:
                return False  # leading dots only for the root
            if was_dot:
                return False
            was_dot = True
            label_len = i - begin
            if label_len >= 64:
                return False
            off += 1 + label_len
            if off > 256:
                return False
            begin = i + 1
        else:
            was_dot = False
        i += 1
    return True


def _parse_cidr(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """Go's net.ParseCIDR: ``ADDR/BITS``, decimal bits (leading zeros ok), no zone, no netmask form."""
    addr, sep, mask = s.partition("/")
    if not sep or "%" in addr or not mask or not (mask.isascii() and mask.isdigit()):
        return None
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    bits = int(mask)
    if bits > ip.max_prefixlen:
        return None
    return ipaddress.ip_network((ip, bits), strict=False)


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones for a CIDR, split on the next octet (v4) or nibble (v6) boundary.

    ``10.0.0.0/24`` -> ``0.0.10.in-addr.arpa.``; ``10.0.0.0/17`` -> 128 /24 zones. Raises
    ValueError if ``cidr`` is not a CIDR.
    """
    net = _parse_cidr(cidr)
    if net is None:
        raise ValueError(f"not a CIDR: {cidr}")
    return _reverse(net)


def _reverse(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    boundary = 8 if net.version == 4 else 4
    ones = net.prefixlen
    ceil = -(-ones // boundary) * boundary  # the next boundary at or above the mask
    nets = cast("list[ipaddress.IPv4Network | ipaddress.IPv6Network]",
                [net] if ones == ceil else list(net.subnets(new_prefix=ceil)))
    out: list[str] = []
    for n in nets:
        if n.version == 4:
            labels = str(n.network_address).split(".")[: n.prefixlen // 8]
            out.append("".join(x + "." for x in reversed(labels)) + "in-addr.arpa.")
        else:
            nibbles = n.network_address.exploded.replace(":", "")[: n.prefixlen // 4]
            out.append("".join(x + "." for x in reversed(nibbles)) + "ip6.arpa.")
    return out


def _split_host_port(s: str) -> tuple[list[str], str]:
    colon = s.rfind(":")
    if colon == len(s) - 1:
        raise _KeyError(f"expecting data after last colon: {go_quote(s)}")
    port = ""
    if colon != -1:
        p = _atoi(s[colon + 1 :])
        if p is not None:
            port = str(p)
            s = s[:colon]
    blen = len(s.encode("utf-8", errors="surrogatepass"))
    if blen > 255:
        raise _KeyError(f"specified zone is too long: {blen} > 255")
    if not is_domain_name(s):
        raise _KeyError(f"zone is not a valid domain name: {s}")
    net = _parse_cidr(s)
    if net is None:
        return [s], port
    if s[0] == ":" or (s[0] == "0" and ":" in s):
        raise _KeyError(f"invalid CIDR {s}")
    return _reverse(net), port


def split_host_port(s: str) -> tuple[list[str], str]:
    """plugin.SplitHostPort for a key without scheme: (hosts, port-or-""); CIDRs give many hosts.

    Raises ValueError with normalize.go's message (unwrapped).
    """
    try:
        return _split_host_port(s)
    except _KeyError as e:
        raise ValueError(str(e)) from None


def normalize_key(key: str, default_dns_port: int = 53) -> list[ZoneAddress]:
    """One server-block key -> its zone addresses (several for a CIDR key off a boundary).

    ``default_dns_port`` is ``-dns.port``; it applies only to ``dns`` keys without a port.
    Raises :class:`ServerBlockKeyError`.
    """
    trans, rest = parse_transport(key)
    try:
        hosts, port = _split_host_port(rest)
        # CoreDNS re-checks each host fully qualified (a fuzzing find): "ȶ" passes, "ȶ." may not
        for h in hosts:
            _split_host_port(fqdn(h))
    except _KeyError as e:
        raise ServerBlockKeyError(str(e)) from None
    p = int(port) if port else (default_dns_port if trans == "dns" else DEFAULT_PORTS.get(trans, 0))
    return [ZoneAddress(trans, fqdn(h).lower(), p) for h in hosts]


def normalize_keys(keys: list[str], default_dns_port: int = 53) -> list[ZoneAddress]:
    """All keys of one server block, CIDR expansions in place, in key order."""
    out: list[ZoneAddress] = []
    for k in keys:
        out.extend(normalize_key(k, default_dns_port))
    return out


def normalize_exact(host: str) -> list[str]:
    """plugin.Host.NormalizeExact: zone(s) of a plugin argument, lowercased FQDNs; [] if invalid.

    Strips any scheme and port, so ``dns://example.org:53`` and ``10.0.0.0/24`` work as plugin zone
    arguments, exactly as CoreDNS plugins accept them.
    """
    _, rest = parse_transport(host)
    try:
        hosts, _ = _split_host_port(rest)
    except _KeyError:
        return []
    return [fqdn(h).lower() for h in hosts]


def origins_from_args_or_keys(args: list[str], keys: list[str]) -> list[str]:
    """plugin.OriginsFromArgsOrServerBlock: the plugin's zone arguments, else the block's zones.

    Invalid arguments are silently dropped, as in CoreDNS.
    """
    if not args:
        out: list[str] = []
        for k in keys:
            z = normalize_exact(k)
            if z:
                out.append(z[0])
        return out
    res: list[str] = []
    for a in args:
        res.extend(normalize_exact(a))
    return res


_RFC1035 = re.compile(r"(([A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)\.)+")


def follows_rfc1035(zone: str) -> bool:
    """CoreDNS's startup zone check: RFC 1035 preferred syntax; the root and reverse zones pass."""
    if zone == "." or zone.endswith((".in-addr.arpa.", ".ip6.arpa.")):
        return True
    return _RFC1035.fullmatch(zone) is not None


def rfc1035_warning(zone: str) -> str | None:
    """The line CoreDNS prints (only a warning) for a zone failing :func:`follows_rfc1035`."""
    if follows_rfc1035(zone):
        return None
    return f"Warning: Domain {go_quote(zone)} does not follow RFC1035 preferred syntax"
