"""One authoritative zone in memory and CoreDNS's `file` lookup over it (plugin/file/lookup.go).

Names are stored lowercased (as CoreDNS's Insert does; SRV owners keep their case, as there), apex
SOA and NS (and their RRSIGs) apart from the other records. `lookup` returns the sections and a
`Result`, or an `External` when a CNAME leaves the zone and its target must be resolved through the
server itself. With DO, a signed zone's RRSIGs go along and denials carry NSEC records (CoreDNS's
NSEC-only DNSSEC: nothing is signed here, the zone file holds the signatures).
"""

from __future__ import annotations

import bisect
import copy
import enum
import os
import re
from dataclasses import dataclass, field

from dnslib import CNAME, RR, DNSLabel

from pycoredns import wire
from pycoredns.plugin import go_quote
from pycoredns.util import is_subdomain

from .zonefile import read_zone

T_A, T_NS, T_CNAME, T_SOA, T_MX = wire.TYPE_A, wire.TYPE_NS, wire.TYPE_CNAME, wire.TYPE_SOA, wire.TYPE_MX
T_AAAA, T_SRV, T_DS = wire.TYPE_AAAA, wire.TYPE_SRV, wire.TYPE_DS
T_SVCB, T_HTTPS = wire.TYPE_SVCB, wire.TYPE_HTTPS
T_RRSIG, T_NSEC, T_NSEC3, T_NSEC3PARAM, T_DNAME = 46, 47, 50, 51, 39
MAX_CHASE = 8  # CNAMEs followed inside the zone (CoreDNS's limit)


class SerialUnchanged(ValueError):
    """The file's SOA serial is the one already loaded (CoreDNS's serialErr): nothing to reload."""


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
    do: bool = False


def _name(label: DNSLabel | str) -> str:
    text = str(label)
    return text if text.endswith(".") else text + "."


_PLAIN = re.compile(rb"[A-Za-z0-9_*-]+")


def _label(name: str) -> DNSLabel:
    """A DNSLabel for a name in presentation form (escapes such as `\\.` allowed), without dnslib's
    IDNA pass, which refuses such labels: qnames come from the wire and may hold any bytes."""
    return DNSLabel(wire.read_name(wire.text_to_wire(name), 0)[0])


def _owner_text(label: DNSLabel) -> str:
    """The text of an owner name: joined from its labels when they are plain (the common case), else
    dnslib's escaped form (what lookups compare with)."""
    labels = label.label
    if all(_PLAIN.fullmatch(x) for x in labels):
        return (b".".join(labels).decode() + ".") if labels else "."
    return _name(label)


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
    sig_soa: list[RR] = field(default_factory=list)
    sig_ns: list[RR] = field(default_factory=list)
    nodes: dict[str, dict[int, list[RR]]] = field(default_factory=dict)
    ancestors: set[str] = field(default_factory=set)  # names with a node strictly below them
    mtime: float = 0.0
    _order: list[tuple[list[bytes], str]] | None = None  # names in canonical order (NSEC denials)

    @property
    def serial(self) -> int:
        return self.soa.rdata.times[0] if self.soa is not None else -1

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(cls, origin: str, path: str, serial: int = -1) -> Zone:
        """Read the master file. Raises OSError, SerialUnchanged when its first SOA has `serial` (CoreDNS's
        Parse: reading stops there; setup passes 0, so a zone with serial 0 does not load, as in
        CoreDNS), or ValueError with CoreDNS's texts."""
        z = cls(origin, path)
        z.mtime = os.stat(path).st_mtime
        records = read_zone(path, origin)
        while True:
            try:
                rr = next(records, None)
            except ValueError as e:
                raise ValueError(f"failed to parse file {go_quote(path)} for origin {origin} with error {e}") from None
            if rr is None:
                break
            if rr.rtype == T_SOA and z.soa is None and serial >= 0 and rr.rdata.times[0] == serial:
                raise SerialUnchanged(
                    f"no change in SOA serial for origin {origin} in file {path}, with {serial} SOA serial")
            if rr.rtype in (T_NSEC3, T_NSEC3PARAM):
                raise ValueError(f"NSEC3 zone is not supported, dropping RR: {_name(rr.rname).lower()} for zone: "
                                 f"{origin}")
            z.insert(rr)
        if z.soa is None:
            raise ValueError(f"file {go_quote(path)} has no SOA record for origin {origin}")
        return z

    def insert(self, rr: RR) -> None:
        owner = _owner_text(rr.rname)
        if rr.rtype != T_SRV and owner != owner.lower():
            owner = owner.lower()
            rr.rname = DNSLabel(owner)
        _lower_rdata(rr)
        if rr.rtype == T_SOA:
            self.soa = rr
            return
        if rr.rtype == T_NS and owner == self.origin:
            self.ns.append(rr)
            return
        if rr.rtype == T_RRSIG and (rr.rdata.covered == T_SOA or (rr.rdata.covered == T_NS and owner == self.origin)):
            (self.sig_soa if rr.rdata.covered == T_SOA else self.sig_ns).append(rr)
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

    def sigs(self, name: str, covered: int) -> list[RR]:
        """The RRSIGs at `name` covering `covered` (rrutil.SubTypeSignature)."""
        return [rr for rr in self.rrs(name, T_RRSIG) if rr.rdata.covered == covered]

    def typed(self, name: str, rtype: int, do: bool) -> list[RR]:
        """The records of a type and, with DO, their signatures (CoreDNS's typeFromElem)."""
        return self.rrs(name, rtype) + (self.sigs(name, rtype) if do else [])

    def apex_soa(self, do: bool) -> list[RR]:
        return [self.soa, *self.sig_soa] if do else [self.soa]  # type: ignore[list-item]

    def apex_ns(self, do: bool) -> list[RR]:
        return [*self.ns, *self.sig_ns] if do else list(self.ns)

    def prev(self, name: str) -> str | None:
        """The largest name of the zone at or before `name` in canonical order (tree.Prev)."""
        if self._order is None:
            self._order = sorted((canonical_key(n), n) for n in self.nodes)
        i = bisect.bisect_right(self._order, (canonical_key(name), "\xff"))
        return self._order[i - 1][1] if i else None

    def closest_encloser(self, qname: str) -> str | None:
        """CoreDNS's ClosestEncloser: qname or its nearest existing ancestor, else the origin node."""
        name = qname
        while "." in name.rstrip("."):
            if name in self.nodes:
                return name
            name = name.split(".", 1)[1]
        return self.origin if self.origin in self.nodes else None

    def nsec(self, name: str | None, do: bool) -> list[RR]:
        return self.typed(name, T_NSEC, do) if name is not None else []

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

    def glue(self, ns_rrs: list[RR], do: bool = False) -> list[RR]:
        out: list[RR] = []
        for rr in ns_rrs:
            if rr.rtype != T_NS:
                continue
            target = _name(rr.rdata.label)
            if is_subdomain(_name(rr.rname), target):
                out += self.typed(target, T_A, do) + self.typed(target, T_AAAA, do)
        return out

    def additional(self, answer: list[RR], do: bool = False) -> list[RR]:
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
            extra += self.typed(name, T_A, do) + self.typed(name, T_AAAA, do)
        return extra

    def delegation(self, node_name: str, qname: str, qtype: int, do: bool = False) -> tuple[list[RR], list[RR]] | None:
        ns = self.rrs(node_name, T_NS)
        if not ns or (qtype == T_DS and node_name == qname):
            return None
        glue = self.glue(ns, do)
        return (ns + self.typed(node_name, T_DS, do) if do else ns), glue

    def find_delegation(self, qname: str, qtype: int, do: bool = False) -> tuple[list[RR], list[RR]] | None:
        labels = qname.rstrip(".").split(".") if qname != "." else []
        i = 1
        while True:
            name, shot = self.name_from_right(labels, i)
            if shot:
                return None
            if name == qname:
                return self.delegation(name, qname, qtype, do) if name in self.nodes else None
            if name in self.nodes:
                found = self.delegation(name, qname, qtype, do)
                if found:
                    return found
            i += 1

    def authority(self, result: Result, do: bool = False) -> list[RR]:
        if result in (Result.NAME_ERROR, Result.NO_DATA):
            return self.apex_soa(do) if self.soa is not None else []
        return self.apex_ns(do)

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
    def lookup(self, qname: str, qtype: int, wildcard_seen: list[str] | None = None,
               do: bool = False) -> Sections | External:
        """Answer `qname` (lowercased FQDN inside the zone) for `qtype`, as CoreDNS's Zone.Lookup."""
        if self.soa is None:
            return [], [], [], Result.SERVER_FAILURE
        if qname == self.origin:
            if qtype == T_SOA:
                return self.apex_soa(do), self.apex_ns(do), [], Result.SUCCESS
            if qtype == T_NS:
                ns = self.apex_ns(do)
                return ns, [], self.glue(ns, do), Result.SUCCESS
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
            if found and (dname := self.rrs(name, T_DNAME)):
                synthesized = self._dname(qname, qtype, name, dname[0], do)
                if synthesized is not None:
                    return synthesized
            if not found:
                wildcard = "*." + name.split(".", 1)[1] if "." in name.rstrip(".") else ""
                if wildcard and wildcard in self.nodes:
                    wild_node, wild_name = wildcard, wildcard
                elif wildcard and self.has_descendant(wildcard):
                    wild_node, wild_name = None, wildcard
                i += 1
                continue
            deleg = self.delegation(name, qname, qtype, do)
            if deleg:
                return [], deleg[0], deleg[1], Result.DELEGATION
            i += 1
        if found and shot:
            cnames = self.rrs(qname, T_CNAME)
            if cnames and qtype != T_CNAME:
                return self.chase(qname, qtype, cnames, do)
            rrs = self.rrs(qname, qtype)
            if not rrs:
                return [], self.apex_soa(do) + (self.nsec(qname, do) if do else []), [], Result.NO_DATA
            additional = self.additional(rrs, do)
            return rrs + (self.sigs(qname, qtype) if do else []), self.apex_ns(do), additional, Result.SUCCESS
        if wild_name and not self.closer_ent_exists(qname, wild_name):
            if wild_node is None:
                return [], self.apex_soa(do), [], Result.NO_DATA
            if wildcard_seen is not None:
                wildcard_seen.append(wild_node)
            cnames = self._for_wildcard(wild_node, T_CNAME, qname)
            if cnames and qtype != T_CNAME:
                return self.chase(wild_node, qtype, cnames, do)
            rrs = self._for_wildcard(wild_node, qtype, qname)
            if not rrs:
                return [], self.apex_soa(do) + (self.nsec(wild_node, do) if do else []), [], Result.NO_DATA
            additional = self.additional(rrs, do)
            auth = self.apex_ns(do)
            if do:
                auth += self.nsec(self.prev(qname), do)
                rrs += [rr for rr in self._for_wildcard(wild_node, T_RRSIG, qname) if rr.rdata.covered == qtype]
            return rrs, auth, additional, Result.SUCCESS
        result = Result.SUCCESS if self.has_descendant(qname) else Result.NAME_ERROR
        return [], self.apex_soa(do) + (self._denial(qname, result) if do else []), [], result

    def _dname(self, qname: str, qtype: int, node: str, dname: RR, do: bool) -> Sections | External | None:
        """CoreDNS's DNAME handling: the CNAME it synthesises for a name below `node`, chased like one."""
        if qname == node:
            return None
        target_suffix = _name(dname.rdata.label)
        keep = qname[: len(qname) - len(node)]
        target = keep + target_suffix if target_suffix != "." else keep
        cname = RR(_label(qname), T_CNAME, ttl=dname.ttl, rdata=CNAME(_label(target)))
        if qname.lower() == target.lower():
            return [], [], [], Result.SERVER_FAILURE
        head = [dname, *(self.sigs(node, T_DNAME) if do else [])]
        if qtype == T_CNAME:
            return [*head, cname], self.apex_ns(do), [], Result.SUCCESS
        res = self.chase(node, qtype, [cname], do)
        if isinstance(res, External):
            return External(head + res.rrs, res.target, res.do)
        answer, ns, extra, result = res
        return head + answer, ns, extra, result

    def _denial(self, qname: str, result: Result) -> list[RR]:
        """The NSEC records (with signatures) proving a name does not exist, as CoreDNS picks them."""
        deny = self.prev(qname)
        if deny is None:
            return []
        out = self.nsec(deny, True)
        if result != Result.NAME_ERROR:
            return out
        ce = self.closest_encloser(qname)
        if ce is not None:
            ss = self.prev("*." + ce)
            if ss is not None and ss != deny:
                out += self.nsec(ss, True)
        return out

    def _for_wildcard(self, node: str, rtype: int, qname: str) -> list[RR]:
        out = []
        for rr in self.rrs(node, rtype):
            c = copy.copy(rr)
            c.rname = _label(qname)
            out.append(c)
        return out

    def chase(self, node: str, qtype: int, rrs: list[RR], do: bool = False) -> Sections | External:
        """CoreDNS's externalLookup: follow CNAMEs inside the zone, hand targets outside it on.

        With DO the CNAMEs' signatures go along (for a wildcard, those of the wildcard node as stored)."""
        rrs = list(rrs) + (self.sigs(node, T_CNAME) if do else [])
        target = _name(rrs[0].rdata.label)
        for _ in range(MAX_CHASE + 2):
            deleg = self.find_delegation(target, qtype, do)
            if deleg:
                return rrs, deleg[0], deleg[1], Result.DELEGATION
            if target not in self.nodes or qtype == T_NS or (qtype == T_SOA and target == self.origin):
                return External(rrs, target, do)
            cname = self.rrs(target, T_CNAME)
            if not cname:
                rrs += self.typed(target, qtype, do)
                return rrs, self.apex_ns(do), self.additional(rrs, do), Result.SUCCESS
            rrs += cname + (self.sigs(target, T_CNAME) if do else [])
            target = _name(cname[0].rdata.label)
        return rrs, self.apex_ns(do), self.additional(rrs, do), Result.SUCCESS

    def finish(self, ext: External, answer: list[RR], result: Result) -> Sections:
        rrs = ext.rrs + answer
        return rrs, self.authority(result, ext.do), self.additional(rrs, ext.do), result

    # -- transfer -------------------------------------------------------------------------------
    def records(self) -> list[RR]:
        """Every record for AXFR: SOA, apex NS, then the nodes in canonical order (no closing SOA)."""
        if self.soa is None:
            return []
        out = [self.soa, *self.sig_soa, *self.ns, *self.sig_ns]
        for name in sorted(self.nodes, key=canonical_key):
            for rrset in self.nodes[name].values():
                out += rrset
        return out


def canonical_key(name: str) -> list[bytes]:
    """RFC 4034 §6.1 canonical order: labels compared right to left, lowercased."""
    return [label.encode().lower() for label in reversed(name.rstrip(".").split("."))] if name != "." else []
