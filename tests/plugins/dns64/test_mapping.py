"""dns64's address mapping (slices of the prefix and the IPv4 octets) against RFC 6052 §2.4's table."""

from __future__ import annotations

import ipaddress

import pytest
from pycoredns.plugins.dns64.handler import mapped, to6

RFC6052 = [  # prefix, 192.0.2.33 mapped into it
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
]


@pytest.mark.parametrize(("prefix", "want"), RFC6052)
def test_rfc6052_table(prefix: str, want: str) -> None:
    net = ipaddress.IPv6Network(prefix)
    a = ipaddress.IPv4Address("192.0.2.33").packed
    assert to6(net, a) == ipaddress.IPv6Address(want).packed
    assert mapped(net.network_address.packed[: net.prefixlen // 8], a) == ipaddress.IPv6Address(want).packed
