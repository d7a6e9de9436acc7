"""One authoritative zone in memory and CoreDNS's `file` lookup over it (plugin/file/lookup.go).

Names are stored lowercased (as CoreDNS's Insert does; SRV owners keep their case, as there), apex
SOA and NS apart from the other records. `lookup` returns the sections and a `Result`, or an
`External` when a CNAME leaves the zone and its target must be resolved through the server itself.
"""

from __future__ import annotations

import copy
import enum
import os
from dataclasses import dataclass, field

from dnslib import RR, DNSLabel

from pycoredns import wire
from pycoredns.plugin import go_quote
from pycoredns.util import is_subdomain

from .zonefile import read_zone

T_A, T_NS, T_CNAME, T_SOA, T_MX = wire.TYPE_A, wire.TYPE_NS, wire.TYPE_CNAME, wire.TYPE_SOA, wire.TYPE_MX
T_AAAA, T_SRV, T_DS = wire.TYPE_AAAA, wire.TYPE_SRV, wire.TYPE_DS
T_SVCB, T_HTTPS = wire.TYPE_SVCB, wire.TYPE_HTTPS
MAX_CHASE = 8  # CNAMEs followed inside the zone (CoreDNS's limit)


class Result(enum.Enum):
    SUCCESS = 0
    NAME_ERROR = 1
    DELEGATION = 2
    NO_DATA = 3
    SERVER_FAILURE = 4


Sections = tuple[list[RR], list[RR], list[RR], Result]


@dataclass
class External:
    """A CNAME chain left the zone: resolve `target` (qtype) through the server, then `finish`."""

    rrs: list[RR]
    target: str


def _name(label: DNSLabel | str) -> str:
    text = str(label)
    return text if text.endswith(".") else text + "."


def _rdata_name(rr: RR) -> str | None:
    """The domain name additional processing follows: SRV/SVCB/HTTPS target, MX exchange."""
    rd = rr.rdata
    if rr.rtype == T_MX:
        return _name(rd.label)
    if rr.rtype == T_SRV:
        return _name(rd.target)
    if rr.rtype in (T_SVCB, T_HTTPS) and hasattr(rd, "target"):
        return _name(rd.target)
    return None


def _lower_rdata(rr: RR) -> None:
    """CoreDNS lowercases the names in NS, SOA, CNAME, MX, SVCB and HTTPS rdata when loading."""
    rd = rr.rdata
    if rr.rtype in (T_NS, T_CNAME):
        rd.label = DNSLabel(_name(rd.label).lower())
    elif rr.rtype == T_SOA:
        rd.mname = DNSLabel(_name(rd.mname).lower())
        rd.rname = DNSLabel(_name(rd.rname).lower())
    elif rr.rtype == T_MX:
        rd.label = DNSLabel(_name(rd.label).lower())


@dataclass
class Zone:
    origin: str
    file: str
    soa: RR | None = None
    ns: list[RR] = field(default_factory=list)
    nodes: dict[str, dict[int, list[RR]]] = field(default_factory=dict)
    ancestors: set[str] = field(default_factory=set)  # names with a node strictly below them
    mtime: float = 0.0

    @property
    def serial(self) -> int:
        return self.soa.rdata.times[0] if self.soa is not None else -1

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(cls, origin: str, path: str) -> Zone:
        """Read the master file. Raises OSError, or ValueError with CoreDNS's texts."""
        z = cls(origin, path)
        z.mtime = os.stat(path).st_mtime
        try:
            records = read_zone(path, origin)
        except ValueError as e:
            raise ValueError(f"failed to parse file {go_quote(path)} for origin {origin} with error {e}") from None
        for rr in records:
            z.insert(rr)
        if z.soa is None:
            raise ValueError(f"file {go_quote(path)} has no SOA record for origin {origin}")
        return z

    def insert(self, rr: RR) -> None:
        owner = _name(rr.rname)
        if rr.rtype != T_SRV:
            owner = owner.lower()
            rr.rname = DNSLabel(owner)
        _lower_rdata(rr)
        if rr.rtype == T_SOA:
            self.soa = rr
            return
        if rr.rtype == T_NS and owner == self.origin:
            self.ns.append(rr)
            return
        rrsets = self.nodes.setdefault(owner, {})
        rrset = rrsets.setdefault(rr.rtype, [])
        if any(x.rdata == rr.rdata for x in rrset):
            return
        rrset.append(rr)
        parent = owner
        while parent != "." and parent != self.origin:
            parent = parent.split(".", 1)[1] or "."
            self.ancestors.add(parent)

    # -- helpers --------------------------------------------------------------------------------
    def rrs(self, name: str, rtype: int) -> list[RR]:
        node = self.nodes.get(name)
        return list(node.get(rtype, ())) if node else []

    def has_descendant(self, name: str) -> bool:
        return name in self.ancestors

    def name_from_right(self, labels: list[str], i: int) -> tuple[str, bool]:
        """CoreDNS's nameFromRight: the origin, then one more label of qname per step; shot past it."""
        if i <= 0:
            return self.origin, False
        k = self.origin_labels + i
        if k > len(labels):
            return ".".join(labels) + ".", True
        return ".".join(labels[len(labels) - k :]) + ".", False

    @property
    def origin_labels(self) -> int:
        return 0 if self.origin == "." else self.origin.count(".")

    def glue(self, ns_rrs: list[RR]) -> list[RR]:
        out: list[RR] = []
        for rr in ns_rrs:
            target = _name(rr.rdata.label)
            if rr.rtype == T_NS and is_subdomain(_name(rr.rname), target):
                out += self.rrs(target, T_A) + self.rrs(target, T_AAAA)
        return out

    def additional(self, answer: list[RR]) -> list[RR]:
        extra: list[RR] = []
        seen: set[str] = set()
        for rr in answer:
            name = _rdata_name(rr)
            if not name or not is_subdomain(self.origin, name.lower()):
                continue
            target = name.lower()
            if target in seen:
                continue
            seen.add(target)
            extra += self.rrs(name, T_A) + self.rrs(name, T_AAAA)
        return extra

    def delegation(self, node_name: str, qname: str, qtype: int) -> tuple[list[RR], list[RR]] | None:
        ns = self.rrs(node_name, T_NS)
        if not ns or (qtype == T_DS and node_name == qname):
            return None
        return ns, self.glue(ns)

    def find_delegation(self, qname: str, qtype: int) -> tuple[list[RR], list[RR]] | None:
        labels = qname.rstrip(".").split(".") if qname != "." else []
        i = 1
        while True:
            name, shot = self.name_from_right(labels, i)
            if shot:
                return None
            if name == qname:
                return self.delegation(name, qname, qtype) if name in self.nodes else None
            if name in self.nodes:
                found = self.delegation(name, qname, qtype)
                if found:
                    return found
            i += 1

    def authority(self, result: Result) -> list[RR]:
        if result in (Result.NAME_ERROR, Result.NO_DATA):
            return [self.soa] if self.soa is not None else []
        return list(self.ns)

    def closer_ent_exists(self, qname: str, wild: str) -> bool:
        if not wild.startswith("*."):
            return False
        parent = wild[2:]
        name = qname
        while True:
            name = name.split(".", 1)[1] if "." in name.rstrip(".") else "."
            if name == parent or not is_subdomain(parent, name):
                return False
            if self.has_descendant(name):
                return True
            if name == ".":
                return False

    # -- the lookup -----------------------------------------------------------------------------
    def lookup(self, qname: str, qtype: int, wildcard_seen: list[str] | None = None) -> Sections | External:
        """Answer `qname` (lowercased FQDN inside the zone) for `qtype`, as CoreDNS's Zone.Lookup."""
        if self.soa is None:
            return [], [], [], Result.SERVER_FAILURE
        if qname == self.origin:
            if qtype == T_SOA:
                return [self.soa], list(self.ns), [], Result.SUCCESS
            if qtype == T_NS:
                return list(self.ns), [], self.glue(self.ns), Result.SUCCESS
        labels = qname.rstrip(".").split(".") if qname != "." else []
        found = False
        shot = False
        wild_name = ""
        wild_node: str | None = None
        i = 0
        while True:
            name, shot = self.name_from_right(labels, i)
            if shot:
                break
            found = name in self.nodes
            if not found:
                wildcard = "*." + name.split(".", 1)[1] if "." in name.rstrip(".") else ""
                if wildcard and wildcard in self.nodes:
                    wild_node, wild_name = wildcard, wildcard
                elif wildcard and self.has_descendant(wildcard):
                    wild_node, wild_name = None, wildcard
                i += 1
                continue
            deleg = self.delegation(name, qname, qtype)
            if deleg:
                return [], deleg[0], deleg[1], Result.DELEGATION
            i += 1
        if found and shot:
            cnames = self.rrs(qname, T_CNAME)
            if cnames and qtype != T_CNAME:
                return self.chase(qname, qtype, cnames)
            rrs = self.rrs(qname, qtype)
            if not rrs:
                return [], [self.soa], [], Result.NO_DATA
            return rrs, list(self.ns), self.additional(rrs), Result.SUCCESS
        if wild_name and not self.closer_ent_exists(qname, wild_name):
            if wild_node is None:
                return [], [self.soa], [], Result.NO_DATA
            if wildcard_seen is not None:
                wildcard_seen.append(wild_node)
            cnames = self._for_wildcard(wild_node, T_CNAME, qname)
            if cnames and qtype != T_CNAME:
                return self.chase(wild_node, qtype, cnames)
            rrs = self._for_wildcard(wild_node, qtype, qname)
            if not rrs:
                return [], [self.soa], [], Result.NO_DATA
            return rrs, list(self.ns), self.additional(rrs), Result.SUCCESS
        result = Result.SUCCESS if self.has_descendant(qname) else Result.NAME_ERROR
        return [], [self.soa], [], result

    def _for_wildcard(self, node: str, rtype: int, qname: str) -> list[RR]:
        out = []
        for rr in self.rrs(node, rtype):
            c = copy.copy(rr)
            c.rname = DNSLabel(qname)
            out.append(c)
        return out

    def chase(self, _node: str, qtype: int, rrs: list[RR]) -> Sections | External:
        """CoreDNS's externalLookup: follow CNAMEs inside the zone, hand targets outside it on."""
        rrs = list(rrs)
        target = _name(rrs[0].rdata.label)
        for _ in range(MAX_CHASE + 2):
            deleg = self.find_delegation(target, qtype)
            if deleg:
                return rrs, deleg[0], deleg[1], Result.DELEGATION
            if target not in self.nodes or qtype == T_NS or (qtype == T_SOA and target == self.origin):
                return External(rrs, target)
            cname = self.rrs(target, T_CNAME)
            if not cname:
                rrs += self.rrs(target, qtype)
                return rrs, list(self.ns), self.additional(rrs), Result.SUCCESS
            rrs += cname
            target = _name(cname[0].rdata.label)
        return rrs, list(self.ns), self.additional(rrs), Result.SUCCESS

    def finish(self, ext: External, answer: list[RR], result: Result) -> Sections:
        rrs = ext.rrs + answer
        return rrs, self.authority(result), self.additional(rrs), result

    # -- transfer -------------------------------------------------------------------------------
    def records(self) -> list[RR]:
        """Every record for AXFR: SOA, apex NS, then the nodes in canonical order (no closing SOA)."""
        if self.soa is None:
            return []
        out = [self.soa, *self.ns]
        for name in sorted(self.nodes, key=canonical_key):
            for rrset in self.nodes[name].values():
                out += rrset
        return out


def canonical_key(name: str) -> list[bytes]:
    """RFC 4034 §6.1 canonical order: labels compared right to left, lowercased."""
    return [label.encode().lower() for label in reversed(name.rstrip(".").split("."))] if name != "." else []
