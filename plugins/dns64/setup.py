"""`dns64 [PREFIX] { prefix PREFIX; translate_all; allow_ipv4 }`: CoreDNS's parse and error texts."""

from __future__ import annotations

import ipaddress

from pycoredns.plugin import ConfigError, Controller

from .handler import DNS64

DEFAULT_PREFIX = "64:ff9b::/96"


def parse_prefix(c: Controller, text: str) -> ipaddress.IPv6Network | ipaddress.IPv4Network:
    _addr, sep, bits = text.partition("/")
    try:
        if not sep or not bits.isdigit():
            raise ValueError
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"invalid CIDR address: {text}") from None
    if net.version != 6:
        raise c.errf("invalid netmask %d IPv6 address: %q", 32, str(net))
    n = net.prefixlen
    if n % 8 or n < 32 or n > 96:
        raise c.errf("invalid prefix length %q", str(net))
    return net


def setup(c: Controller) -> None:
    prefix = ipaddress.IPv6Network(DEFAULT_PREFIX)
    translate_all = allow_ipv4 = False
    for _ in c.occurrences():
        args = c.remaining_args()
        if len(args) == 1:
            prefix = parse_prefix(c, args[0])  # type: ignore[assignment]
            continue
        if args:
            raise c.arg_err()
        while c.next_block():
            option = c.val()
            if option == "prefix":
                if not c.next_arg():
                    raise c.arg_err()
                prefix = parse_prefix(c, c.val())  # type: ignore[assignment]
            elif option == "translate_all":
                translate_all = True
            elif option == "allow_ipv4":
                allow_ipv4 = True
            else:
                raise c.errf("unknown property '%s'", option)
    c.add_handler(DNS64(prefix, translate_all, allow_ipv4, c.server_label()))
