"""bind: the addresses (or interfaces) a server block listens on (CoreDNS `bind`).

An interface name expands to all of its addresses at setup time (IPv6 link-local ones with their
`%iface` zone); `except` removes addresses within the same `bind` line; several lines merge.
"""

from __future__ import annotations

import ipaddress
import socket

from pycoredns.plugin import ConfigError, Controller, go_quote


def interface_addresses() -> dict[str, list[str]]:
    """Addresses per interface from /proc (IPv6) and ioctl-free parsing of `ip -o addr` fallbacks."""
    out: dict[str, list[str]] = {}
    try:
        import fcntl
        import struct

        for _idx, name in socket.if_nameindex():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
                out.setdefault(name, []).append(socket.inet_ntoa(packed[20:24]))
            except OSError:
                out.setdefault(name, [])
            finally:
                s.close()
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexaddr, _idx, _plen, scope, _flags, name = line.split()
                addr = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
                if int(scope, 16) == 0x20:
                    addr += f"%{name}"
                out.setdefault(name, []).append(addr)
    except OSError:
        pass
    return out


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
