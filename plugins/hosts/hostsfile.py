"""hosts(5) lines into name -> addresses and address -> names tables (CoreDNS's hostsfile.Map)."""

from __future__ import annotations

from pycoredns.util import IP, fqdn, parse_ip, zone_match


class HostsMap:
    """One parsed source: name -> addresses per family, address -> names (for PTR)."""

    __slots__ = ("addr", "name4", "name6")

    def __init__(self) -> None:
        self.name4: dict[str, list[IP]] = {}
        self.name6: dict[str, list[IP]] = {}
        self.addr: dict[IP, list[str]] = {}

    def __len__(self) -> int:
        """CoreDNS's Map.Len: addresses of every name plus names of every address (PTR entries)."""
        return sum(len(v) for table in (self.name4, self.name6, self.addr) for v in table.values())


def parse_hosts(lines: list[str], origins: list[str], reverse: bool) -> HostsMap:
    """hosts(5) lines into a map; names outside `origins` are ignored, like CoreDNS."""
    m = HostsMap()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        ip = parse_ip(fields[0].split("%", 1)[0])  # Go's ParseIP after dropping an IPv6 zone
        if ip is None:
            continue
        table = m.name4 if ip.version == 4 else m.name6
        for raw in fields[1:]:
            name = fqdn(raw.lower())
            if zone_match(origins, name) is None:
                continue
            table.setdefault(name, []).append(ip)
            if reverse and not name.startswith("*."):  # no PTR for wildcard names
                m.addr.setdefault(ip, []).append(name)
    return m
