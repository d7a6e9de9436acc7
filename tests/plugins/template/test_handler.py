"""template: matching and evaluation order, RR templates in every section, rcodes, ederror,
CNAME self-lookups and metrics, through a running server (moved from tests/test_template.py)."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from conftest import query, running
from pycoredns.plugins.template import metrics as tmetrics

from .helpers import texts, total

IP_TEMPLATES = r"""example. in-addr.arpa. {
    template IN A example {
      match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
    template IN PTR in-addr.arpa {
      match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
      answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }
    template IN MX example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
      additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      authority  "example. 60 IN NS ns0.example."
      authority  "example. 60 IN NS ns1.example."
    }
    whoami
}
"""


async def test_readme_ip_templates() -> None:
    async with running(IP_TEMPLATES) as srv:
        r = await query(srv.port(), "IP-10-1-2-3.Example", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert r.question[0].name.to_text() == "IP-10-1-2-3.Example."
        assert texts(r.answer) == ["ip-10-1-2-3.example. 60 IN A 10.1.2.3"]
        assert not r.authority and not r.additional
        r = await query(srv.port(), "3.2.1.10.in-addr.arpa", "PTR", tcp=True)
        assert texts(r.answer) == ["3.2.1.10.in-addr.arpa. 60 IN PTR ip-10-1-2-3.example."]
        r = await query(srv.port(), "ip-10-1-2-3.example", "MX")
        assert texts(r.answer) == ["ip-10-1-2-3.example. 60 IN MX 10 ip-10-1-2-3.example."]
        assert texts(r.authority) == ["example. 60 IN NS ns0.example.\nexample. 60 IN NS ns1.example."]
        assert texts(r.additional) == ["ip-10-1-2-3.example. 60 IN A 10.1.2.3"]


async def test_evaluation_order_fallthrough_and_servfail() -> None:
    cf = r"""example. other. {
    template IN A example {
      match ^a[.]
      answer "{{ .Name }} 1 IN A 192.0.2.1"
      fallthrough
    }
    template IN TXT example {
      answer "{{ .Name }} 1 IN TXT first"
    }
    template IN A example {
      match ^b[.]
      answer "{{ .Name }} 2 IN A 192.0.2.2"
    }
    template IN A other {
      match ^nothing$
      fallthrough other.
    }
    whoami
}
"""
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example", "A")
        assert texts(r.answer) == ["a.example. 1 IN A 192.0.2.1"]
        r = await query(srv.port(), "b.example", "A")  # first template falls through, a type mismatch skips
        assert texts(r.answer) == ["b.example. 2 IN A 192.0.2.2"]
        r = await query(srv.port(), "c.example", "A")  # zone matches, no regex, no fallthrough
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer and not r.additional
        assert not r.flags & dns.flags.AA
        r = await query(srv.port(), "c.example", "TXT")
        assert texts(r.answer) == ['c.example. 1 IN TXT "first"']
        r = await query(srv.port(), "x.other", "A")  # falls through to whoami
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        assert [rr.rdtype for rr in r.additional] == [dns.rdatatype.A, dns.rdatatype.SRV]
        r = await query(srv.port(), "c.example", "AAAA")  # no template for the type: next plugin
        assert [rr.rdtype for rr in r.additional] == [dns.rdatatype.A, dns.rdatatype.SRV]


async def test_fallthrough_zones_limit_and_any_type() -> None:
    cf = r""". {
    template ANY ANY example {
      match ^x[.]
      answer "{{ .Name }} 5 {{ .Class }} TXT {{ .Type }}"
      fallthrough in-addr.arpa.
    }
    whoami
}
"""
    async with running(cf) as srv:
        r = await query(srv.port(), "x.example", "MX")
        assert texts(r.answer) == ['x.example. 5 IN TXT "MX"']
        r = await query(srv.port(), "x.example", "ANY")  # ANY matches; .Type is the template's (ANY)
        assert texts(r.answer) == ['x.example. 5 IN TXT "ANY"']
        r = await query(srv.port(), "y.example", "A")  # fallthrough does not cover example.
        assert r.rcode() == dns.rcode.SERVFAIL
        r = await query(srv.port(), "y.org", "A")  # outside the template zones
        assert r.rcode() == dns.rcode.NOERROR and len(r.additional) == 2


async def test_rcode_nxdomain_with_soa_and_rcode_servfail() -> None:
    cf = r""". {
    template ANY ANY invalid {
      rcode NXDOMAIN
      authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
    }
    template IN A fail.example {
      rcode SERVFAIL
    }
    template IN A refused.example {
      rcode REFUSED
      answer "{{ .Name }} 3 IN A 192.0.2.3"
    }
}
"""
    async with running(cf) as srv:
        before = total(tmetrics.matches_total, zone="invalid.")
        r = await query(srv.port(), "foo.invalid", "AAAA")
        assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA and not r.answer
        assert texts(r.authority) == ["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"]
        assert total(tmetrics.matches_total, zone="invalid.", **{"class": "IN", "type": "AAAA"}) == before + 1
        m0 = total(tmetrics.matches_total, zone="fail.example.")
        r = await query(srv.port(), "fail.example", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and not r.flags & dns.flags.AA
        assert total(tmetrics.matches_total, zone="fail.example.") == m0 + 1
        r = await query(srv.port(), "refused.example", "A")  # written by the template, not again by the server
        assert r.rcode() == dns.rcode.REFUSED and texts(r.answer) == ["refused.example. 3 IN A 192.0.2.3"]


async def test_cname_answers_are_followed_for_a_and_aaaa_only() -> None:
    cf = r""". {
    template IN ANY alias.example {
      answer "{{ .Name }} 10 IN CNAME target.example."
    }
    template IN A target.example {
      answer "target.example. 20 IN A 192.0.2.20"
    }
    template IN AAAA target.example {
      answer "target.example. 20 IN AAAA 2001:db8::20"
    }
    template IN A loop.example {
      match ^a[.]
      answer "{{ .Name }} 1 IN CNAME b.loop.example."
      fallthrough
    }
    template IN A loop.example {
      answer "{{ .Name }} 1 IN CNAME a.loop.example."
    }
}
"""
    async with running(cf) as srv:
        r = await query(srv.port(), "alias.example", "A")
        assert texts(r.answer) == ["alias.example. 10 IN CNAME target.example.",
                                   "target.example. 20 IN A 192.0.2.20"]
        r = await query(srv.port(), "alias.example", "AAAA", tcp=True)
        assert texts(r.answer) == ["alias.example. 10 IN CNAME target.example.",
                                   "target.example. 20 IN AAAA 2001:db8::20"]
        r = await query(srv.port(), "alias.example", "TXT")
        assert texts(r.answer) == ["alias.example. 10 IN CNAME target.example."]
        r = await query(srv.port(), "a.loop.example", "A")  # a CNAME loop ends at the re-entry limit
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0].to_text() == "a.loop.example. 1 IN CNAME b.loop.example."


async def test_template_and_rr_failures_are_servfail_and_counted() -> None:
    cf = r""". {
    template IN A t.example {
      answer "{{ index .Match 5 }} 60 IN A 192.0.2.1"
    }
    template IN A r.example {
      answer "{{ .Name }} 60 IN A 999.1.1.1"
    }
    template IN AAAA p.example {
      match ^(?P<n>[0-9a-f]+)[.]
      answer "{{ .Name }} 60 IN AAAA 2001:db8::{{ parseInt .Group.n 16 16 }}"
    }
}
"""
    async with running(cf) as srv:
        t0 = total(tmetrics.template_failures_total, zone="t.example.", section="answer")
        r = await query(srv.port(), "t.example", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
        assert total(tmetrics.template_failures_total, zone="t.example.", section="answer",
                     template="{{ index .Match 5 }} 60 IN A 192.0.2.1") == t0 + 1
        r0 = total(tmetrics.rr_failures_total, zone="r.example.")
        r = await query(srv.port(), "r.example", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert total(tmetrics.rr_failures_total, zone="r.example.") == r0 + 1
        r = await query(srv.port(), "ff.p.example", "AAAA")
        assert texts(r.answer) == ["ff.p.example. 60 IN AAAA 2001:db8::255"]  # printed in decimal, as Go
        r = await query(srv.port(), "fffff.p.example", "AAAA")  # parseInt out of range for 16 bits
        assert r.rcode() == dns.rcode.SERVFAIL
        r = await query(srv.port(), "a.p.example", "AAAA")  # and keeps serving
        assert texts(r.answer) == ["a.p.example. 60 IN AAAA 2001:db8::10"]


async def test_ederror_adds_an_ede_option() -> None:
    cf = r""". {
    template IN A blocked.example {
      rcode NXDOMAIN
      ederror 15 "blocked by policy"
    }
    template IN A quiet.example {
      rcode REFUSED
      ederror 18
    }
}
"""
    async with running(cf) as srv:
        r = await query(srv.port(), "blocked.example", "A", use_edns=0)
        assert r.rcode() == dns.rcode.NXDOMAIN
        ede = [o for o in r.options if o.otype == dns.edns.OptionType.EDE]
        assert len(ede) == 1 and ede[0].code == 15 and ede[0].text == "blocked by policy"
        r = await query(srv.port(), "quiet.example", "A")  # no EDNS from the client: the OPT is still added
        assert r.rcode() == dns.rcode.REFUSED and r.edns == 0 and r.ednsflags & dns.flags.DO
        assert [(o.code, o.text) for o in r.options] == [(18, None)]


async def test_template_data_fields() -> None:
    cf = (
        ". {\n    template IN TXT example {\n      match ^(?P<host>[a-z]+)[.](example)[.]$\n"
        r'      answer "{{ .Name }} 1 IN TXT {{ .Zone }} {{ .Class }} {{ .Type }} {{ index .Match 2 }} '
        r'{{ .Group.host }} {{ .Group.nope }}"' "\n"
        r'      answer "{{ .Name }} 1 IN TXT {{ .Remote }} {{ .Question.Name }} '
        r'{{ (index .Message.Question 0).Qtype }} {{ .Message.Id | printf \"%d\" | len }}"' "\n"
        r'      answer "{{ .Name }} 1 IN TXT {{- \" trimmed\" -}} {{/* a comment */}} '
        r'{{ printf \"%s-%03d\" .Group.host 7 }} {{ .Meta \"x/y\" }}"' "\n    }\n}\n"
    )
    async with running(cf) as srv:
        r = await query(srv.port(), "Host.example", "TXT")
        got = [rd.to_text() for rrset in r.answer for rd in rrset]
        assert got[0] == '"example." "IN" "TXT" "example" "host" "<no" "value>"'
        remote, qname, qtype, idlen = [s.strip('"') for s in got[1].split()]
        assert (remote, qname, qtype) == ("127.0.0.1", "Host.example.", "16") and 1 <= int(idlen) <= 5
        assert got[2] == '"trimmed" "host-007"'
