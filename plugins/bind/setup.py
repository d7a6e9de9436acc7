"""`bind ADDRESS|IFACE ... { except ADDRESS|IFACE ... }`: the addresses a server block listens on.

An interface name expands to all of its addresses at setup time (IPv6 link-local ones with their
`%iface` zone); `except` removes addresses within the same `bind` line; several lines merge.
"""

from __future__ import annotations

import ipaddress

from pycoredns.plugin import ConfigError, Controller, go_quote

from .interfaces import interface_addresses


def _resolve(arg: str, ifaces: dict[str, list[str]]) -> list[str]:
    try:
        return [str(ipaddress.ip_address(arg))]
    except ValueError:
        pass
    if arg in ifaces:
        return ifaces[arg]
    raise ConfigError(f"not a valid IP address or interface name: {go_quote(arg)}")


def setup(c: Controller) -> None:
    hosts: list[str] = []
    ifaces: dict[str, list[str]] | None = None
    for _ in c.occurrences():
        args = c.remaining_args()
        if not args:
            raise c.arg_err()
        excepts: list[str] = []
        while c.next_block():
            if c.val() != "except":
                raise c.err(f"unknown property '{c.val()}'")
            ex = c.remaining_args()
            if not ex:
                raise c.arg_err()
            excepts.extend(ex)
        if ifaces is None and any(not _is_ip(a) for a in args + excepts):
            ifaces = interface_addresses()
        line: list[str] = []
        for a in args:
            line.extend(_resolve(a, ifaces or {}))
        removed = {x for e in excepts for x in _resolve(e, ifaces or {})}
        for h in line:
            if h not in removed and h not in hosts:
                hosts.append(h)
    if not hosts:
        raise ConfigError("no addresses to bind to")
    c.block.listen_hosts = hosts


def _is_ip(a: str) -> bool:
    try:
        ipaddress.ip_address(a)
        return True
    except ValueError:
        return False
