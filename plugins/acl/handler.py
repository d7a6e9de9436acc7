"""The acl handler: rules over zones, each a list of policies; the first policy matching both the
qtype and the client address decides. Blocked and filtered replies are built on the wire with an OPT
(4096, DO) carrying an Extended DNS Error (15 Blocked, 17 Filtered)."""

from __future__ import annotations

import ipaddress
import struct

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Request, ResponseWriter, SyncHandler
from pycoredns.util import zone_match
from pycoredns.wire import EDE_BLOCKED, EDE_FILTERED

from .metrics import allowed_total, blocked_total, dropped_total, filtered_total

log = plugin_logger("acl")

ALLOW, BLOCK, FILTER, DROP = "allow", "block", "filter", "drop"
ACTIONS = (ALLOW, BLOCK, FILTER, DROP)
OPTION_EDE = 15  # EDNS option code of Extended DNS Errors (RFC 8914)


def _opt_with_ede(code: int) -> bytes:
    """OPT: UDP size 4096, DO set, one EDE option with the info code and no extra text."""
    return b"\x00" + struct.pack(">HHIH", wire.TYPE_OPT, 4096, 0x8000, 6) + struct.pack(">HHH", OPTION_EDE, 2, code)


_OPT_BLOCKED = _opt_with_ede(EDE_BLOCKED)
_OPT_FILTERED = _opt_with_ede(EDE_FILTERED)

Net = tuple[int, int, int]  # (ip version, network address as int, netmask as int)


class Policy:
    __slots__ = ("action", "nets", "qtypes")

    def __init__(self, action: str, qtypes: set[int] | None, nets: list[Net] | None) -> None:
        self.action = action
        self.qtypes = qtypes  # None: every type
        self.nets = nets  # None: every address

    def matches(self, qtype: int, ip: tuple[int, int]) -> bool:
        if self.qtypes is not None and qtype not in self.qtypes:
            return False
        if self.nets is None:
            return True
        version, value = ip
        return any(v == version and value & mask == net for v, net, mask in self.nets)


class Rule:
    __slots__ = ("policies", "zones")

    def __init__(self, zones: list[str], policies: list[Policy]) -> None:
        self.zones = zones
        self.policies = policies


_ip_cache: dict[str, tuple[int, int] | None] = {}


def _client_ip(text: str) -> tuple[int, int] | None:
    """(version, int) of the client address, cached: clients repeat and parsing costs a µs."""
    ip = _ip_cache.get(text)
    if ip is None and text not in _ip_cache:
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
            ip = (addr.version, int(addr))
        except ValueError:
            ip = None
        if len(_ip_cache) > 10000:
            _ip_cache.clear()
        _ip_cache[text] = ip
    return ip


class ACL(SyncHandler):
    name = "acl"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def handle(self, req: Request, w: ResponseWriter) -> int:
        server = req.listener.label if req.listener is not None else ""
        name = req.name
        for rule in self.rules:
            zone = zone_match(rule.zones, name)
            if zone is None:
                continue
            action = self._action(rule, req)
            if action is None:
                continue
            if action == ALLOW:
                break
            if action == BLOCK:
                w.write(req.reply_header(wire.REFUSED, ar=1) + req.question + _OPT_BLOCKED)
                blocked_total.inc(server, zone, "")
            elif action == FILTER:
                w.write(req.reply_header(wire.NOERROR, ar=1) + req.question + _OPT_FILTERED)
                filtered_total.inc(server, zone, "")
            else:
                dropped_total.inc(server, zone, "")
            return wire.NOERROR  # written (or deliberately silent): nothing more to do
        allowed_total.inc(server, "")
        return NEXT

    @staticmethod
    def _action(rule: Rule, req: Request) -> str | None:
        ip = _client_ip(req.remote[0])
        if ip is None:
            log.error(f"Blocking request. Unable to parse source address: {req.remote[0]}")
            return BLOCK
        qtype = req.qtype
        for p in rule.policies:
            if p.matches(qtype, ip):
                return p.action
        return None
