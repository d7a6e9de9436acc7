"""loadbalance setup: `loadbalance [round_robin|weighted FILE { reload D }] { prefer CIDR... }`."""

from __future__ import annotations

import ipaddress

from pycoredns.plugin import ConfigError, Controller
from pycoredns.util import format_duration, parse_duration

from .handler import LoadBalance
from .policy import DEFAULT_WEIGHT_RELOAD, Subnet, Weighted, WeightFileError, log


def _subnet(c: Controller, text: str) -> Subnet:
    """Go's net.ParseCIDR: a prefix length is required, host bits are masked."""
    try:
        if "/" not in text:
            raise ValueError(text)
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise c.errf("invalid CIDR %q: %v", text, f"invalid CIDR address: {text}") from None
    return net.version, int(net.network_address), int(net.netmask)


def setup(c: Controller) -> None:
    subnets: list[Subnet] = []
    weighted: Weighted | None = None
    for _ in c.occurrences():
        args = c.remaining_args()
        if args:
            if args[0] == "round_robin":
                if len(args) > 1:
                    raise c.errf("unknown property for %s", args[0])
            elif args[0] == "weighted":
                weighted = _weighted(c, args)
            else:
                raise ConfigError(f"unknown policy: {args[0]}")
        while c.next_block():
            if c.val() != "prefer":
                raise c.errf("unknown property '%s'", c.val())
            for cidr in c.remaining_args():
                subnets.append(_subnet(c, cidr))
    if weighted is not None:
        # CoreDNS reads the file at startup; reading it here gives the same error before serving.
        try:
            weighted.update()
        except WeightFileError as e:
            if str(e) != "weight file open error" or weighted.reload == 0:
                raise ConfigError(str(e)) from None
            log.warning(f"Failed to open weight file:{e}. Will try again in {format_duration(weighted.reload)}")
        if weighted.reload > 0:
            c.start_soon(weighted.reload_loop)
    c.add_handler(LoadBalance(subnets, weighted))


def _weighted(c: Controller, args: list[str]) -> Weighted:
    """`weighted FILE { reload DURATION }`: this block is the policy's (CoreDNS reads it here)."""
    if len(args) < 2:
        raise c.err("missing weight file argument")
    if len(args) > 2:
        raise c.err("unexpected argument(s)")
    reload = DEFAULT_WEIGHT_RELOAD
    while c.next_block():
        if c.val() != "reload":
            raise c.errf("unknown property '%s'", c.val())
        t = c.remaining_args()
        if not t:
            raise c.err("reload duration value is missing")
        if len(t) > 1:
            raise c.err("unexpected argument")
        try:
            reload = parse_duration(t[0])
        except ValueError:
            raise c.errf("invalid reload duration '%s'", t[0]) from None
    return Weighted(c.path(args[1]), reload)
