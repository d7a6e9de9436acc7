"""The host's addresses per network interface (what `bind IFACE` expands to)."""

from __future__ import annotations

import ipaddress
import socket


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
                hexaddr, _ifindex, _plen, scope, _flags, name = line.split()
                addr = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
                if int(scope, 16) == 0x20:
                    addr += f"%{name}"
                out.setdefault(name, []).append(addr)
    except OSError:
        pass
    return out
