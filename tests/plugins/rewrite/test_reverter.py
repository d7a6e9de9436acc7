"""The wire reverter byte for byte: names read as runs of bytes (`expand_name`) and compressed by
suffix bytes give exactly what the label-by-label reverter gave (commit 12427a8), on valid replies
and damaged ones (the same bytes, or the same error)."""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

import dns.message
import dns.rrset
from pycoredns.plugins.rewrite import response
from pycoredns.plugins.rewrite.names import Matcher, valid_name
from pycoredns.plugins.rewrite.response import CnameTarget, Message, answers_of, revert, revert_message
from pycoredns.plugins.rewrite.rules import State, new_rule

from pycoredns import wire
from pycoredns.request import Request

RULES = ["name exact a.example.org. b.example.org. answer auto", "cname exact x.example. y.example.",
         "ttl regex .* 10-20", "name suffix example.org. Example.ORG. answer auto"]
# sha256 of every output below (reply bytes, or the repr of the error) as 12427a8's reverter wrote them
RECORDED = "cd196d3287785ab1065dbb0c3cbe6fc7864ae213be78156ec095655751bb364b"


@functools.cache
def replies() -> list[bytes]:
    return list(_replies())


def _replies() -> Iterator[bytes]:
    """60 replies of random names (mixed case, shared suffixes) and types with names in their data,
    each followed by 20 copies with 1-3 octets after the header changed."""
    rnd = random.Random(5)
    labels = ["a", "B", "b", "x", "Example", "example", "org", "ORG", "svc", "mail"]
    types = ["A", "CNAME", "MX", "SRV", "NS", "PTR", "SOA", "NAPTR", "TXT", "DNAME", "AAAA"]
    data = {"A": "192.0.2.1", "AAAA": "2001:db8::1", "TXT": '"t"'}
    for i in range(60):
        mq = dns.message.make_query("a.example.org.", "A")
        mq.id = i
        m = dns.message.make_response(mq)
        for sec in (m.answer, m.authority, m.additional):
            for _ in range(rnd.randint(0, 4)):
                n = ".".join(rnd.choice(labels) for _ in range(rnd.randint(1, 4))) + "."
                t = rnd.choice(types)
                tgt = ".".join(rnd.choice(labels) for _ in range(rnd.randint(1, 3))) + "."
                rd = data.get(t) or {"MX": f"10 {tgt}", "SRV": f"0 0 80 {tgt}", "SOA": f"{tgt} h.{tgt} 1 2 3 4 5",
                                     "NAPTR": f'1 2 "S" "SIP" "" {tgt}'}.get(t, tgt)
                sec.append(dns.rrset.from_text(n, 60, "IN", t, rd))
        good = m.to_wire()
        yield good
        for _ in range(20):
            d = bytearray(good)
            for _ in range(rnd.randint(1, 3)):
                d[rnd.randrange(12, len(d))] = rnd.randrange(256)
            yield bytes(d)


def cases() -> Iterator[tuple[bytes, Request, Any]]:
    """(reply, its request, the rules' state) for every rule and reply, in a fixed order."""
    for spec in RULES:
        rule = new_rule(spec.split())
        for data in replies():
            query = struct.pack(">HHHHHH", data[0] << 8 | data[1], 0x0100, 1, 0, 0, 0)
            req = Request(query + wire.text_to_wire("a.example.org.") + b"\0\1\0\1")
            rules = rule.rewrite(State(req))
            assert rules is not None
            yield data, req, rules


def test_reverter_writes_what_the_label_reverter_wrote() -> None:
    out = []
    for data, req, rules in cases():
        try:
            got = revert(data, req, rules, False)
        except Exception as e:
            got = repr(e).encode()
        out.append(got)
    assert len(out) == 4 * 60 * 21
    assert hashlib.sha256(b"".join(out)).hexdigest() == RECORDED


def test_compression_is_case_exact_and_uncompressed_names_are_targets() -> None:
    """An SRV target is written out (never compressed) but later names point into it; a name that
    differs in case only shares the suffix whose case matches."""
    qname = wire.text_to_wire("a.example.org.")
    target = wire.text_to_wire("s.b.test.")
    srv = struct.pack(">HHH", 0, 0, 80) + target
    a = struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
    reply = (b"\x00\x07\x81\x80\x00\x01\x00\x01\x00\x00\x00\x02" + qname + b"\x00\x21\x00\x01"
             + b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(srv)) + srv
             + wire.text_to_wire("S.B.test.") + a + wire.text_to_wire("s.b.test.") + a)
    req = Request(b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x21\x00\x01")
    rules = new_rule(["ttl", "regex", ".*", "10-20"]).rewrite(State(req))
    assert rules is not None
    out = revert(reply, req, rules, False)
    at = 12 + len(qname) + 4 + 2 + 10 + 6  # the SRV target
    assert out[at : at + len(target)] == target
    a20 = struct.pack(">HHIH", 1, 1, 20, 4) + bytes([192, 0, 2, 1])
    assert out[at + len(target) :] == (b"\x01S\x01B" + struct.pack(">H", 0xC000 | (at + 4)) + a20
                                       + struct.pack(">H", 0xC000 | at) + a20)


def test_kept_answers_are_what_message_reads_from_the_result() -> None:
    """revert(keep=True) notes the answers for a self-lookup's caller (`answers_of`, once): the same
    records as a walk of the reply it wrote, or nothing noted when an answer's data was compressed."""
    kept = walked = 0
    for data, req, rules in cases():
        try:
            out = revert(data, req, rules, False, keep=True)
        except (wire.WireError, ValueError):
            continue
        want = [r.pack() for r in Message(out).an]
        noted = response._kept[0] is out
        assert [r.pack() for r in answers_of(out)] == want
        assert response._kept[0] is None  # taken once
        kept += noted
        walked += not noted
    assert kept > 100 and walked > 100  # both ways were taken


def test_cname_target_owner_match_by_wire_is_the_text_match() -> None:
    """`cname` keeps the looked-up answers whose owner's text is the new target: compared on the wire
    when the target text is canonical, never equal otherwise (escapes, case, no final dot)."""
    rule = CnameTarget(Matcher("exact", "x."), "y.")
    texts = ["renamed.bench.test.", "renamed.bench.test", "Renamed.bench.test.", "a\\.b.test.", "a\\097.test.",
             "aa.test.", "a\\\\.test.", "\\255x.test.", "\\(q\\).test.", "a..test.", "."]
    owners = [wire.text_to_wire(t) for t in texts if t != "a..test."] + [b"\x02A\\\x04test\x00", b"\x01\xff\x00"]
    for to in texts:
        got = rule._target(to)
        if got is None:
            assert not valid_name(to)
            continue
        target, canonical = got
        for owner in owners:
            assert (owner == target if canonical else False) == (wire.wire_name_to_text(owner) == to), (to, owner)


def test_names_read_off_the_wire_are_domain_names() -> None:
    """rewrite checks IsDomainName only for a name a rule wrote: any name a query can carry passes it
    (labels of any octets, dots and backslashes in them, up to 63 and 255 octets)."""
    rnd = random.Random(3)
    for _ in range(20000):
        labels: list[bytes] = []
        total = 1
        for _ in range(rnd.randint(0, 8)):
            n = rnd.choice([1, 2, 3, 10, 63, rnd.randint(1, 63)])
            if total + n + 1 > 255:
                break
            labels.append(bytes(rnd.choice([rnd.randrange(256), 46, 92, 97, 48]) for _ in range(n)))
            total += n + 1
        name = b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
        assert valid_name(wire.wire_name_to_text(name)), name
    assert valid_name(wire.wire_name_to_text((b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"))  # 255 octets


def _outcome(fn: Callable[..., bytes], reply: object, req: Request, rules: list) -> bytes:
    try:
        return fn(reply, req, rules, True)
    except Exception as e:  # the error is part of what is compared
        return repr(e).encode()


def test_revert_message_is_revert_of_the_packed_message() -> None:
    """What `cname` rules rebuilt is reverted from its records (revert_message): the same bytes, or the
    same error, as reverting the packed message, including NAPTR data names and several questions
    (which take the packed way)."""
    compared = 0
    for spec in RULES:
        rule = new_rule(spec.split())
        for data in replies():
            try:
                msg = Message(data)
            except (wire.WireError, ValueError, IndexError):
                continue
            query = struct.pack(">HHHHHH", data[0] << 8 | data[1], 0x0100, 1, 0, 0, 0)
            req = Request(query + wire.text_to_wire("a.example.org.") + b"\0\1\0\1")
            rules = rule.rewrite(State(req))
            assert rules is not None
            assert _outcome(revert, msg.pack(), req, rules) == _outcome(revert_message, msg, req, rules)
            compared += 1
    assert compared > 1000
    two = dns.message.make_response(dns.message.make_query("a.example.org.", "A"))
    two.question.append(two.question[0])
    msg = Message(two.to_wire())
    req = Request(two.to_wire()[:2] + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire.text_to_wire("a.example.org.")
                  + b"\0\1\0\1")
    assert revert_message(msg, req, [], False) == revert(msg.pack(), req, [], False)
