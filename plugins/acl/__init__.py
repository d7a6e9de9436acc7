"""acl: allow, block, filter or drop queries by type and client network (CoreDNS `acl`).

Each `acl` directive is a rule over its zones; rules are checked in order and, within a rule, the
first policy matching both the qtype and the client address decides. Blocked and filtered replies
are built on the wire with an OPT (4096, DO) carrying an Extended DNS Error (15 Blocked, 17 Filtered).
"""

from __future__ import annotations

import ipaddress
import struct

from pycoredns import metrics, wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Controller, SyncHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import zone_match

log = plugin_logger("acl")

ALLOW, BLOCK, FILTER, DROP = "allow", "block", "filter", "drop"
ACTIONS = (ALLOW, BLOCK, FILTER, DROP)
SECTIONS = ("type", "net", "file")
EDE_BLOCKED, EDE_FILTERED = 15, 17

blocked_total = metrics.REGISTRY.counter(
    "coredns_acl_blocked_requests_total", "Counter of DNS requests being blocked.", ("server", "zone", "view"))
filtered_total = metrics.REGISTRY.counter(
    "coredns_acl_filtered_requests_total", "Counter of DNS requests being filtered.", ("server", "zone", "view"))
allowed_total = metrics.REGISTRY.counter(
    "coredns_acl_allowed_requests_total", "Counter of DNS requests being allowed.", ("server", "view"))
dropped_total = metrics.REGISTRY.counter(
    "coredns_acl_dropped_requests_total", "Counter of DNS requests being dropped.", ("server", "zone", "view"))


def _opt_with_ede(code: int) -> bytes:
    """OPT: UDP size 4096, DO set, one EDE option with the info code and no extra text."""
    return b"\x00" + struct.pack(">HHIH", wire.TYPE_OPT, 4096, 0x8000, 6) + struct.pack(">HHH", 15, 2, code)


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


def normalize_net(text: str) -> str:
    """A bare address becomes a /32 or /128 (what the error message then shows, as in CoreDNS)."""
    if "/" not in text:
        text += "/128" if ":" in text else "/32"
    return text


def parse_net(text: str) -> Net | None:
    """A normalized CIDR; host bits are masked like Go's ParseCIDR."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.netmask)


def _section_tokens(c: Controller) -> tuple[list[str], bool]:
    """Tokens up to the next section keyword; True when one follows (loadFollowingTokens)."""
    tokens: list[str] = []
    while c.next_arg():
        if c.val().lower() in SECTIONS:
            return tokens, True
        tokens.append(c.val())
    return tokens, False


def _networks_file(c: Controller, path: str) -> list[str]:
    try:
        with open(c.path(path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise c.errf("unable to load networks from local file: %v", f"open {path}: {e.strerror or e}") from None
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def _policy(c: Controller) -> Policy:
    action = c.val().lower()
    if action not in ACTIONS:
        raise c.errf("unexpected token '%s'; expect 'allow', 'block', 'filter' or 'drop'", c.val())
    if not c.next_arg():
        return Policy(action, None, None)
    qtypes: set[int] = set()
    any_type = False
    raw_nets: list[str] = []
    while True:
        section = c.val().lower()
        tokens, more = _section_tokens(c)
        if not tokens:
            raise c.errf("no token specified in '%s' section", section)
        if section == "type":
            for t in tokens:
                if t == "*":
                    any_type = True
                    break
                value = wire.type_value(t) if t == t.upper() else None
                if value is None:
                    raise c.errf("unexpected token '%s'; expect legal QTYPE", t)
                qtypes.add(value)
        elif section == "net":
            raw_nets.extend(tokens)
        elif section == "file":
            for t in tokens:
                raw_nets.extend(_networks_file(c, t))
        else:
            raise c.errf("unexpected token '%s'; expect 'type | net | file'", c.val())
        if not more:
            break
    nets: list[Net] | None = []
    for raw in raw_nets:
        if raw == "*":
            nets = None
            break
        raw = normalize_net(raw)
        net = parse_net(raw)
        if net is None:
            raise c.errf("illegal CIDR notation '%s'", raw)
        nets.append(net)
    if not raw_nets:
        nets = None
    return Policy(action, None if any_type or not qtypes else qtypes, nets)


def setup(c: Controller) -> None:
    rules: list[Rule] = []
    for _ in c.occurrences():
        zones = c.zones_from(c.remaining_args())
        policies: list[Policy] = []
        while c.next_block():
            policies.append(_policy(c))
        rules.append(Rule(zones, policies))
    c.add_handler(ACL(rules))
