"""`acl [ZONES...] { ACTION [type QTYPE...|*] [net CIDR...|*] [file PATH...] }`: Corefile parsing.

Each `acl` directive is a rule over its zones; rules are checked in order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from pycoredns import wire
from pycoredns.plugin import Controller

from .handler import ACL, ACTIONS, Net, Policy, Rule


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


class _Policy:
    """What the sections of one policy line collect."""

    def __init__(self) -> None:
        self.qtypes: set[int] = set()
        self.any_type = False
        self.raw_nets: list[str] = []


def _types(c: Controller, tokens: list[str], p: _Policy) -> None:
    for t in tokens:
        if t == "*":
            p.any_type = True
            break
        value = wire.type_value(t) if t == t.upper() else None
        if value is None:
            raise c.errf("unexpected token '%s'; expect legal QTYPE", t)
        p.qtypes.add(value)


def _nets(c: Controller, tokens: list[str], p: _Policy) -> None:
    p.raw_nets.extend(tokens)


def _files(c: Controller, tokens: list[str], p: _Policy) -> None:
    for t in tokens:
        p.raw_nets.extend(_networks_file(c, t))


SECTIONS: dict[str, Callable[[Controller, list[str], _Policy], None]] = {"type": _types, "net": _nets, "file": _files}


def _policy(c: Controller) -> Policy:
    action = c.val().lower()
    if action not in ACTIONS:
        raise c.errf("unexpected token '%s'; expect 'allow', 'block', 'filter' or 'drop'", c.val())
    if not c.next_arg():
        return Policy(action, None, None)
    p = _Policy()
    while True:
        section = c.val().lower()
        tokens, more = _section_tokens(c)
        if not tokens:
            raise c.errf("no token specified in '%s' section", section)
        read = SECTIONS.get(section)
        if read is None:
            raise c.errf("unexpected token '%s'; expect 'type | net | file'", c.val())
        read(c, tokens, p)
        if not more:
            break
    return Policy(action, None if p.any_type or not p.qtypes else p.qtypes, _networks(c, p.raw_nets))


def _networks(c: Controller, raw_nets: list[str]) -> list[Net] | None:
    """The policy's networks; None (every address) for none or a `*`."""
    nets: list[Net] = []
    for raw in raw_nets:
        if raw == "*":
            return None
        raw = normalize_net(raw)
        net = parse_net(raw)
        if net is None:
            raise c.errf("illegal CIDR notation '%s'", raw)
        nets.append(net)
    return nets or None


def setup(c: Controller) -> None:
    rules: list[Rule] = []
    for _ in c.occurrences():
        zones = c.zones_from(c.remaining_args())
        policies: list[Policy] = []
        while c.next_block():
            policies.append(_policy(c))
        rules.append(Rule(zones, policies))
    c.add_handler(ACL(rules))
