"""`health [ADDRESS] { lameduck DURATION }`: Corefile parsing and registration."""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller
from pycoredns.util import parse_duration

from .health import DEFAULT_ADDRESS, Health, ok


def _lameduck(c: Controller) -> float:
    args = c.remaining_args()
    if len(args) != 1:
        raise c.arg_err()
    try:
        return parse_duration(args[0])
    except ValueError as e:
        raise ConfigError(f"unable to parse lameduck duration value: '{args[0]}' : {e}") from None


def setup(c: Controller) -> None:
    addr, lameduck = "", 0.0
    for _ in c.occurrences():
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() != "lameduck":  # CoreDNS: any other property is an argument error
                raise c.arg_err()
            lameduck = _lameduck(c)
    # Process-wide: the last health directive in the whole Corefile wins.
    health = c.config_state("health", Health)
    if health.address:
        c.remove_http_route(health.address, "/health")
    else:
        c.on_final_shutdown(health.lameduck_sleep)
    health.address, health.lameduck = addr or DEFAULT_ADDRESS, lameduck
    c.http_route(health.address, "/health", ok)
