"""Where a k8s_external answer points (CoreDNS's msg.Service, reduced): shared by answers and transfers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dnslib import CNAME, QTYPE, RR, DNSRecord


@dataclass
class Svc:
    """CoreDNS's msg.Service, reduced: where an answer points (IP or name), its port and key name."""

    host: str
    port: int = 0
    domain: str = ""  # msg.Domain(Key): the SRV target for address hosts
    strip: int = 0  # TargetStrip: labels cut off the front of the SRV target

    def host_type(self) -> int:
        """A or AAAA for an IP, CNAME for a name, 0 for what no record can carry (a bad ingress hostname)."""
        try:
            return QTYPE.A if ipaddress.ip_address(self.host).version == 4 else QTYPE.AAAA
        except ValueError:
            pass
        try:
            DNSRecord(rr=[RR("x.", QTYPE.CNAME, rdata=CNAME(self.host.rstrip(".") + "."))]).pack()
        except Exception:  # dnslib refuses empty or over-long labels
            return 0
        return QTYPE.CNAME
