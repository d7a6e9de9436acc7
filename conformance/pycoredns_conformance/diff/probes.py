"""The queries a differential run sends: the suite's cases, generated ones and malformed packets.

A `Probe` is wire bytes plus a transport; both servers get exactly the same bytes (same id), so every
difference in the replies comes from the servers. Generation is seeded (`random.Random(seed)`), so a
run can be repeated query for query.

Names come from three places, none of them specific to one server implementation: the zones of the
Corefile (server block keys and the `kubernetes` zones), the objects of the Kubernetes fixture (every
record the Kubernetes DNS spec and CoreDNS derive from Services, EndpointSlices and Pods) and the
suite's upstream zone data.
"""

from __future__ import annotations

import ipaddress
import random
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.reversename

#: Query types a generated probe picks from (the common ones, plus a few odd ones servers special-case).
QTYPES = ("A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "NS", "SOA", "MX", "ANY", "CAA", "HTTPS", "SVCB",
          "DS", "DNSKEY", "NULL", "HINFO", "NAPTR", "TYPE65280")
#: EDNS variants: no OPT record, or these advertised UDP sizes (0 and 511 are below the minimum).
EDNS_SIZES = (None, None, 0, 511, 512, 1232, 4096, 65535)


@dataclass
class Probe:
    """One query: `label` says what it is (shown in reports), `wire` what is sent."""

    label: str
    wire: bytes
    proto: str = "udp"
    kind: str = "generated"  # suite | generated | malformed | probe

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "proto": self.proto, "kind": self.kind, "wire": self.wire.hex()}


def query_wire(name: str, qtype: str, qid: int, *, edns: int | None = None, do: bool = False,
               rd: bool = True, cd: bool = False, rclass: str = "IN") -> bytes:
    """A query as a stub or a resolver sends it; the name is used exactly as spelled (0x20 case kept)."""
    msg = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(qtype),
                                 dns.rdataclass.from_text(rclass),
                                 use_edns=0 if edns is not None or do else False,
                                 payload=edns if edns is not None else 1232, want_dnssec=do)
    msg.id = qid
    if not rd:
        msg.flags &= ~dns.flags.RD
    if cd:
        msg.flags |= dns.flags.CD
    return msg.to_wire()


def describe(name: str, qtype: str, proto: str, edns: int | None, do: bool, rd: bool, cd: bool,
             rclass: str = "IN") -> str:
    extra = [proto]
    if edns is not None or do:
        extra.append(f"edns{edns if edns is not None else 1232}" + ("+do" if do else ""))
    if not rd:
        extra.append("norec")
    if cd:
        extra.append("cd")
    cls = f" {rclass}" if rclass != "IN" else ""
    return f"{name}{cls} {qtype} {' '.join(extra)}"


# -- names --------------------------------------------------------------------------------------------

_KEY = re.compile(r"^\s*([^#{}\s][^{}]*?)\s*\{\s*$")


def corefile_zones(text: str) -> list[str]:
    """Zones a Corefile serves: its server block keys (`zone:port`, `dns://zone`) and `kubernetes` zones."""
    zones: list[str] = []
    depth = 0
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        m = _KEY.match(line) if depth == 0 else None
        if m:
            for key in m.group(1).split():
                key = re.sub(r"^[a-z]+://", "", key).split(":", 1)[0].split("/", 1)[0]
                zones.append(key)
        words = line.split()
        if depth == 1 and words and words[0] == "kubernetes":
            zones += [w for w in words[1:] if w != "{"]
        depth += line.count("{") - line.count("}")
    out = []
    for z in zones:
        z = z.strip().lower()
        z = "." if z in ("", ".") else z.rstrip(".") + "."
        if z not in out and not z.startswith("@"):
            out.append(z)
    return out


def _ports(obj: dict) -> list[dict]:
    return [p for p in (obj.get("spec", {}).get("ports") or obj.get("ports") or []) if isinstance(p, dict)]


def fixture_names(objects: Iterable[dict], zone: str) -> list[str]:
    """Every name the Kubernetes DNS spec (and CoreDNS's extensions) derive from the objects, under `zone`."""
    names: list[str] = [zone, f"svc.{zone}", f"pod.{zone}", f"dns-version.{zone}", f"ns.dns.{zone}"]
    ips: list[str] = []
    services: dict[tuple[str, str], str] = {}
    for o in objects:
        kind = o.get("kind")
        meta = o.get("metadata") or {}
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        if kind == "Namespace":
            names += [f"{name}.svc.{zone}", f"{name}.pod.{zone}"]
        elif kind == "Service":
            svc = f"{name}.{ns}.svc.{zone}"
            services[(ns, name)] = svc
            names.append(svc)
            spec = o.get("spec") or {}
            ips += [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
            for p in _ports(o):
                if p.get("name"):
                    proto = str(p.get("protocol", "TCP")).lower()
                    names += [f"_{p['name']}._{proto}.{svc}", f"{p['name']}.{proto}.{svc}"]
        elif kind == "EndpointSlice":
            owner = (meta.get("labels") or {}).get("kubernetes.io/service-name", "")
            svc = f"{owner}.{ns}.svc.{zone}"
            for ep in o.get("endpoints") or []:
                for ip in ep.get("addresses") or []:
                    ips.append(ip)
                    host = ep.get("hostname") or ip.replace(".", "-").replace(":", "-")
                    names.append(f"{host}.{svc}")
        elif kind == "Pod":
            for ip in [x.get("ip") for x in (o.get("status") or {}).get("podIPs") or []]:
                if ip:
                    dashed = ip.replace(".", "-").replace(":", "-")
                    names.append(f"{dashed}.{ns}.pod.{zone}")
                    ips.append(ip)
    if zone in ("in-addr.arpa.", "ip6.arpa.") or zone.endswith(".arpa."):
        return [zone] + [dns.reversename.from_address(ip).to_text() for ip in _valid_ips(ips)
                         if dns.reversename.from_address(ip).to_text().endswith(zone)]
    return list(dict.fromkeys(names))


def _valid_ips(ips: Iterable[str]) -> list[str]:
    out = []
    for ip in dict.fromkeys(ips):
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    return out


def zone_data_names(zones: dict[str, list[str]]) -> list[str]:
    """Owner names of upstream zone data (RR text lines) plus a name below each zone that does not exist."""
    out: list[str] = []
    for zone, lines in zones.items():
        out += [line.split()[0] for line in lines]
        out.append(f"nx-upstream.{zone}")
    return list(dict.fromkeys(out))


def random_label(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
    n = rng.choice((1, 3, 8, 15, 63))
    s = "".join(rng.choice(alphabet) for _ in range(n))
    return ("x" + s[1:-1] + "x") if n > 1 else "x"


def random_names(zones: list[str], rng: random.Random, n: int) -> list[str]:
    """Names that (almost surely) do not exist, at several depths under every zone."""
    out = []
    for _ in range(n):
        z = rng.choice(zones)
        depth = rng.choice((1, 1, 2, 3, 4, 5, 6))
        labels = [random_label(rng) for _ in range(depth)]
        while len(".".join(labels)) + len(z) > 250:  # stay a valid name: at most 255 octets on the wire
            labels.pop()
        out.append(".".join(labels or ["x"]) + "." + (z if z != "." else ""))
    return out


def case_0x20(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)


def generated(names: list[str], rng: random.Random, n: int) -> list[Probe]:
    """`n` probes over `names`: every common qtype, 0x20 case, EDNS sizes, DO, RD, CD, UDP and TCP."""
    out = []
    for _ in range(n):
        name = rng.choice(names)
        if rng.random() < 0.25:
            name = case_0x20(name, rng)
        qtype = rng.choice(QTYPES)
        edns = rng.choice(EDNS_SIZES)
        do = rng.random() < 0.15
        rd = rng.random() < 0.9
        cd = rng.random() < 0.05
        proto = "tcp" if rng.random() < 0.25 else "udp"
        qid = rng.randrange(65536)
        out.append(Probe(describe(name, qtype, proto, edns, do, rd, cd),
                         query_wire(name, qtype, qid, edns=edns, do=do, rd=rd, cd=cd), proto))
    return out


def systematic(names: list[str], qtypes: Iterable[str] = ("A", "AAAA", "SRV", "PTR", "TXT", "NS", "SOA"),
               ) -> list[Probe]:
    """Each name with each of a few qtypes, plain UDP: the backbone of a run, every name covered.
    Every probe has its own id, so a late reply to another probe is never taken for its answer."""
    pairs = [(n, t) for n in names for t in qtypes]
    return [Probe(describe(n, t, "udp", None, False, True, False), query_wire(n, t, 0x1000 + i % 0xE000))
            for i, (n, t) in enumerate(pairs)]


# -- malformed packets ----------------------------------------------------------------------------------


def _header(qid: int = 0xBEEF, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def _name(text: str) -> bytes:
    return dns.name.from_text(text).to_wire()


def _q(name: str = "example.org.", qtype: int = 1, qclass: int = 1) -> bytes:
    return _name(name) + struct.pack("!HH", qtype, qclass)


def _opt(size: int = 1232, ext_rcode: int = 0, version: int = 0, flags: int = 0, rdata: bytes = b"",
         owner: bytes = b"\x00") -> bytes:
    return owner + struct.pack("!HHBBHH", 41, size, ext_rcode, version, flags, len(rdata)) + rdata


def malformed(zone_names: list[str]) -> list[Probe]:
    """Packets a server must survive and answer correctly (or drop): broken headers, names, OPT records,
    odd opcodes, classes and types. Sent over UDP, and the well-framed ones over TCP too."""
    name = zone_names[0] if zone_names else "example.org."
    q = _q(name)
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes: over 255
    cases: list[tuple[str, bytes]] = [
        ("empty packet", b""),
        ("one byte", b"\x01"),
        ("short header (11 bytes)", _header()[:11]),
        ("header only, qdcount 0", _header(qd=0)),
        ("header only, qdcount 1, no question", _header()),
        ("question cut after the name", _header() + _name(name)),
        ("question cut inside the type", _header() + _name(name) + b"\x00"),
        ("QR set (a response sent as a query)", _header(flags=0x8100) + q),
        ("qdcount 2", _header(qd=2) + q + _q(name, 28)),
        ("qdcount 2, one question", _header(qd=2) + q),
        ("label length 64 (0x40 label type)", _header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"),
        ("label type 0x80", _header() + b"\x81a\x00\x00\x01\x00\x01"),
        ("name over 255 bytes", _header() + long_name + b"\x00\x01\x00\x01"),
        ("compression pointer loop", _header() + b"\xc0\x0c\x00\x01\x00\x01"),
        ("compression pointer forward", _header() + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 20),
        ("opcode IQUERY", _header(flags=0x0900) + q),
        ("opcode STATUS", _header(flags=0x1100) + q),
        ("opcode 3 (unassigned)", _header(flags=0x1900) + q),
        ("opcode NOTIFY", _header(flags=0x2000) + _q(name, 6)),
        ("opcode UPDATE", _header(flags=0x2800) + _q(name, 6)),
        ("opcode 15", _header(flags=0x7900) + q),
        ("Z bit set", _header(flags=0x0140) + q),
        ("TC bit set in a query", _header(flags=0x0300) + q),
        ("AD bit set", _header(flags=0x0120) + q),
        ("rcode 5 in a query", _header(flags=0x0105) + q),
        ("class CH TXT version.bind.", _header() + _q("version.bind.", 16, 3)),
        ("class CH TXT version.server.", _header() + _q("version.server.", 16, 3)),
        ("class CH TXT hostname.bind.", _header() + _q("hostname.bind.", 16, 3)),
        ("class ANY", _header() + _q(name, 1, 255)),
        ("class NONE", _header() + _q(name, 1, 254)),
        ("class 1234", _header() + _q(name, 1, 1234)),
        ("qtype 0", _header() + _q(name, 0)),
        ("qtype OPT", _header() + _q(name, 41)),
        ("qtype AXFR over UDP", _header() + _q(name, 252)),
        ("qtype IXFR over UDP", _header() + _q(name, 251)),
        ("qtype MAILB", _header() + _q(name, 253)),
        ("qtype TSIG", _header() + _q(name, 250)),
        ("trailing bytes after the question", _header() + q + b"\xde\xad\xbe\xef"),
        ("arcount 1, nothing there", _header(ar=1) + q),
        ("ancount 1 with an answer record", _header(an=1) + q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"
         + bytes([192, 0, 2, 1])),
        ("two OPT records", _header(ar=2) + q + _opt() + _opt()),
        ("OPT version 1 (BADVERS)", _header(ar=1) + q + _opt(version=1)),
        ("OPT version 1 with DO", _header(ar=1) + q + _opt(version=1, flags=0x8000)),
        ("OPT size 0", _header(ar=1) + q + _opt(size=0)),
        ("OPT extended rcode bits set", _header(ar=1) + q + _opt(ext_rcode=1)),
        ("OPT owner not root", _header(ar=1) + q + _opt(owner=_name(name))),
        ("OPT option length past rdata", _header(ar=1) + q + _opt(rdata=b"\x00\x0a\x00\x10\x01\x02")),
        ("OPT NSID request", _header(ar=1) + q + _opt(rdata=b"\x00\x03\x00\x00")),
        ("OPT client cookie", _header(ar=1) + q + _opt(rdata=b"\x00\x0a\x00\x08" + b"\x01" * 8)),
        ("OPT cookie of bad length 5", _header(ar=1) + q + _opt(rdata=b"\x00\x0a\x00\x05" + b"\x01" * 5)),
        ("OPT unknown option 65001", _header(ar=1) + q + _opt(rdata=b"\xfd\xe9\x00\x02\xab\xcd")),
        ("OPT padding option", _header(ar=1) + q + _opt(rdata=b"\x00\x0c\x00\x04\x00\x00\x00\x00")),
        ("OPT ECS 10.0.0.0/8", _header(ar=1) + q + _opt(rdata=b"\x00\x08\x00\x05\x00\x01\x08\x00\x0a")),
        ("OPT ECS bad family", _header(ar=1) + q + _opt(rdata=b"\x00\x08\x00\x05\x00\x09\x08\x00\x0a")),
        ("OPT expire option", _header(ar=1) + q + _opt(rdata=b"\x00\x09\x00\x00")),
        ("OPT rdata cut", _header(ar=1) + q + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x08\x00\x0a"),
        ("OPT in the answer section", _header(an=1) + q + _opt()),
        ("TSIG record with bad rdata", _header(ar=1) + q + _name("key.") + b"\x00\xfa\x00\xff\x00\x00\x00\x00"
         + b"\x00\x02\xab\xcd"),
        ("record rdlength past the end", _header(ar=1) + q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x40"),
        ("uppercase name with trailing garbage", _header() + _q(name.upper()) + b"\x00"),
        ("root name A", _header() + _q(".", 1)),
        ("root name NS", _header() + _q(".", 2)),
    ]
    out = [Probe(f"malformed: {label}", data, "udp", "malformed") for label, data in cases]
    out += [Probe(f"malformed: {label}", data, "tcp", "malformed") for label, data in cases
            if len(data) >= 12 and "cut" not in label and "past" not in label]
    return out
