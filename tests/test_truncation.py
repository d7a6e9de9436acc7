"""Wire-level truncation keeps whole records in order, the OPT at the end, and sets TC."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset
import pytest

from pycoredns.truncation import truncate


def big_reply(n: int = 40, edns: bool = True, extra: int = 0) -> bytes:
    q = dns.message.make_query("big.example.org", "TXT", use_edns=0 if edns else False, payload=1232)
    r = dns.message.make_response(q)
    for i in range(n):
        r.answer.append(dns.rrset.from_text("big.example.org.", 60, "IN", "TXT", f'"record {i:03d} padding text"'))
    for i in range(extra):
        r.additional.append(dns.rrset.from_text(f"ns{i}.example.org.", 60, "IN", "A", f"192.0.2.{i + 1}"))
    return r.to_wire(max_size=65535)


@pytest.mark.parametrize("size", [0, 100, 512, 700, 1232])
def test_cut_to_size_with_tc_and_opt(size):
    data = big_reply()
    out = truncate(data, size)
    assert out is not None and len(out) <= max(size, 512)
    m = dns.message.from_wire(out)
    assert m.flags & dns.flags.TC
    assert m.edns == 0  # the OPT survives, last
    kept = sum(len(rrset) for rrset in m.answer)
    assert 0 < kept < 40
    texts = [rr.to_text() for rrset in m.answer for rr in rrset]
    assert texts == [f'"record {i:03d} padding text"' for i in range(kept)]  # a prefix, in order


def test_fits_unchanged():
    data = big_reply(3)
    assert truncate(data, 512) is data


def test_additional_cut_after_full_answer():
    data = big_reply(5, extra=60)
    m = dns.message.from_wire(truncate(data, 600))
    assert sum(len(r) for r in m.answer) == 5
    assert 0 < sum(len(r) for r in m.additional) < 60
    assert m.flags & dns.flags.TC


def test_without_edns():
    m = dns.message.from_wire(truncate(big_reply(edns=False), 512))
    assert m.edns == -1 and m.flags & dns.flags.TC


def test_garbage_is_left_to_the_caller():
    data = big_reply()
    assert truncate(data[:700], 512) is None


def test_opt_anywhere_moves_last_with_pointers_following():
    """loadbalance puts the OPT before the shuffled glue: truncation moves it last, names stay valid."""
    from pycoredns.layout import layout, opt_index, permute

    q = dns.message.make_query("big.example.org", "TXT", use_edns=0, payload=1232)
    r = dns.message.make_response(q)
    for i in range(5):
        r.answer.append(dns.rrset.from_text("big.example.org.", 60, "IN", "TXT", f'"record {i:03d}"'))
    for i in range(60):  # glue owners compress against each other: pointers into later records
        r.additional.append(dns.rrset.from_text(f"ns{i}.sub.example.org.", 60, "IN", "A", f"192.0.2.{i + 1}"))
    data = r.to_wire(max_size=65535)
    lay = layout(data)
    opt = opt_index(lay)
    first = lay.counts[0] + lay.counts[1]
    order = [i for i in range(len(lay.types)) if i != opt]
    order.insert(first + 1, opt)  # OPT second in the additional section
    moved = permute(data, lay, order)
    assert dns.message.from_wire(moved).edns == 0
    out = truncate(moved, 700)
    assert out is not None and len(out) <= 700
    m = dns.message.from_wire(out)
    assert m.flags & dns.flags.TC and m.edns == 0
    assert sum(len(s) for s in m.answer) == 5 and 0 < sum(len(s) for s in m.additional) < 60
