"""template's RR-text parser, directly (moved from tests/test_template.py)."""

from __future__ import annotations

import pytest
from pycoredns.plugins.template import parse_rr

from pycoredns import wire


def test_parse_rr_defaults_and_errors() -> None:
    assert str(parse_rr("foo 60 IN A 192.0.2.1").rname) == "foo."
    assert parse_rr("foo.example. A 192.0.2.1").ttl == 3600
    assert parse_rr('t.example. 1 IN TXT "a (b)"').rdata.data == [b"a (b)"]
    for bad in ("", "garbage", "a.example. 60 IN A 1.2.3", "a.example. 60 IN BOGUS x"):
        with pytest.raises(ValueError):
            parse_rr(bad)


def test_wire_rr_packs_what_parse_rr_packs() -> None:
    """The wire builder (the lookup path's records) and dnslib agree byte for byte; what the builder does
    not take (unusual names or rdata, other types, errors) is left to parse_rr, so its errors stay."""
    from dnslib import DNSRecord
    from pycoredns.plugins.template.rr import wire_rr

    from pycoredns.layout import uncompressed

    for text in ("n1.alias.test. 60 IN CNAME n1.bench.test.", "foo 60 IN A 192.0.2.1", "foo. IN 30 AAAA 2001:db8::1",
                 "Foo.Example. 5 CNAME bar", "x. MX 10 mail.x.", "_s._tcp.x. 60 IN SRV 1 2 53 t.x.", "x. PTR y.",
                 "x. NS ns1.x.", "x. 60 CH A 10.0.0.1", "*.x. 0 IN CNAME a-b_c.d", "a.b. AAAA 2001:DB8:0:0:0:0:0:1"):
        rec = DNSRecord()
        rec.add_answer(parse_rr(text))
        built = wire_rr(text)
        assert built is not None and built.packed == uncompressed(bytes(rec.pack()))[0], text
    assert wire_rr("Foo.Example. 5 CNAME bar").target == "bar."  # type: ignore[union-attr]
    for target in ("bar", "bar.", "Bar.Example.", "a-b_c.d"):  # what the self-lookup asks: the target's wire form
        assert wire_rr(f"x. 5 CNAME {target}").rdata == wire.text_to_wire(target)  # type: ignore[union-attr]
    for text in ("x. DNAME y.", "x. A 1.2.3.4.", "@ A 1.2.3.4", "x. TXT a", "x\\.y. A 1.2.3.4", "x. A 256.1.1.1",
                 "x. AAAA ::ffff:1.2.3.4", "x. MX 70000 a.", "x. 4294967296 A 1.1.1.1", "a" * 64 + ". A 1.1.1.1",
                 "x. A 1.2.3.4 5.6.7.8", "x. CNAME"):
        assert wire_rr(text) is None, text
