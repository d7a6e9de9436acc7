"""rewrite: request rules (name, type, class, edns0), response rules (answer name/value/auto, ttl,
rcode, cname), stop/continue and the reverter, through a running server (moved from tests/test_rewrite.py;
the configuration errors are in test_setup.py).

A test-only backend plugin at the end of the chain records the request it was given and answers
with a scripted reply, so each test sees both sides of the rewrite.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
import trio
from conftest import query, running
from dnslib import CNAME, MX, NAPTR, NS, PTR, QTYPE, RD, RR, SOA, SRV, TXT, A

from pycoredns import directives, wire
from pycoredns.plugin import Controller, PluginError, SyncHandler
from pycoredns.request import Request, ResponseWriter

Reply = bytes | int | Exception


class _Backend(SyncHandler):
    """Records each request and answers with `reply(req)` (bytes written, int returned, or raised)."""

    name = "rwtest_backend"
    seen: list[Request] = []
    reply: Callable[[Request], Reply] | None = None

    def handle(self, req: Request, w: ResponseWriter) -> int:
        cls = type(self)
        cls.seen.append(req)
        out = (cls.reply or default_reply)(req)
        if isinstance(out, Exception):
            raise out
        if isinstance(out, int):
            return out
        w.write(out)
        return out[3] & 0xF


def _setup(c: Controller) -> None:
    while c.next():
        pass
    c.add_handler(_Backend())


_mod = types.ModuleType("rwtest_backend")
_mod.setup = _setup  # type: ignore[attr-defined]
sys.modules["rwtest_backend"] = _mod


@pytest.fixture(autouse=True)
def backend():
    directives.register("rwtest_backend", _mod, after="whoami")
    _Backend.seen = []
    _Backend.reply = None
    yield _Backend


def make(req: Request, *answers: RR, auth: tuple[RR, ...] = (), extra: tuple[RR, ...] = (), rcode: int = 0) -> bytes:
    rec = req.reply_record()
    rec.header.aa = 1
    rec.header.rcode = rcode
    for rr in answers:
        rec.add_answer(rr)
    for rr in auth:
        rec.add_auth(rr)
    for rr in extra:
        rec.add_ar(rr)
    return bytes(rec.pack())


def default_reply(req: Request) -> bytes:
    """An A record (or TXT for other types) owned by the name the backend was asked."""
    if req.qtype == QTYPE.A:
        return make(req, RR(req.qlabel, QTYPE.A, ttl=100, rdata=A("192.0.2.1")))
    return make(req, RR(req.qlabel, QTYPE.TXT, ttl=100, rdata=TXT(req.name)))


def corefile(*lines: str) -> str:
    return ". {\n" + "\n".join("    " + x for x in lines) + "\n    rwtest_backend\n}\n"


def owners(msg: dns.message.Message) -> list[str]:
    return [rrset.name.to_text() for rrset in msg.answer]


def asked(backend) -> str:
    return backend.seen[-1].name


# -- name rules ----------------------------------------------------------------------------------


async def test_exact_name_is_rewritten_and_the_answer_reverted(backend) -> None:
    async with running(corefile("rewrite name exact Foo.Example.org bar.example.org")) as srv:
        for tcp in (False, True):
            r = await query(srv.port(), "FOO.example.org", "A", tcp=tcp)
            assert asked(backend) == "bar.example.org."
            assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
            assert r.question[0].name.to_text() == "FOO.example.org."
            assert owners(r) == ["foo.example.org."]
            assert r.answer[0][0].to_text() == "192.0.2.1"
        r = await query(srv.port(), "other.example.org", "A")
        assert asked(backend) == "other.example.org." and owners(r) == ["other.example.org."]


@pytest.mark.parametrize(("rule", "qname", "backend_name", "owner"), [
    ("name prefix foo bar", "foo.a.example.", "bar.a.example.", "bar.a.example."),
    ("name prefix foo bar answer auto", "foo.a.example.", "bar.a.example.", "foo.a.example."),
    ("name prefix foo bar", "foox.a.example.", "foox.a.example.", "foox.a.example."),
    ("name suffix example.org example.net", "a.example.org.", "a.example.net.", "a.example.net."),
    ("name suffix .example.org. .example.net. answer auto", "a.b.example.org.", "a.b.example.net.",
     "a.b.example.org."),
    ("name substring mid other", "a.mid.example.", "a.other.example.", "a.other.example."),
    ("name substring mid other answer auto", "a.mid.example.", "a.other.example.", "a.mid.example."),
    (r"name regex ^(.*)-(us-west-1)\.example\.org\.$ {1}.service.{2}.consul", "ftp-us-west-1.example.org.",
     "ftp.service.us-west-1.consul.", "ftp.service.us-west-1.consul."),
    (r"name regex ^(.*)-(us-west-1)\.example\.org\.$ {1}.service.{2}.consul answer auto",
     "ftp-us-west-1.example.org.", "ftp.service.us-west-1.consul.", "ftp-us-west-1.example.org."),
    ("name example.com example.net", "example.com.", "example.net.", "example.com."),
])
async def test_name_match_types(backend, rule: str, qname: str, backend_name: str, owner: str) -> None:
    async with running(corefile("rewrite " + rule)) as srv:
        r = await query(srv.port(), qname, "A")
        assert asked(backend) == backend_name
        assert r.question[0].name.to_text() == qname
        assert owners(r) == [owner]


async def test_answer_name_and_value_in_every_section_block_form(backend) -> None:
    def reply(req: Request) -> bytes:
        return make(
            req,
            RR("ftp.service.us-west-1.consul.", QTYPE.CNAME, ttl=30, rdata=CNAME("www.service.us-west-1.consul.")),
            RR("www.service.us-west-1.consul.", QTYPE.A, ttl=30, rdata=A("192.0.2.9")),
            auth=(RR("consul.", QTYPE.NS, ttl=30, rdata=NS("ns.service.us-west-1.consul.")),),
            extra=(RR("ns.service.us-west-1.consul.", QTYPE.A, ttl=30, rdata=A("192.0.2.53")),),
        )

    backend.reply = reply
    cf = corefile(
        "rewrite stop {",
        r"    name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul",
        r"    answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.example.org",
        r"    answer value (.*)\.service\.(us-west-1)\.consul {1}-{2}.example.org",
        "}",
    )
    async with running(cf) as srv:
        r = await query(srv.port(), "ftp-us-west-1.example.org", "A")
        assert asked(backend) == "ftp.service.us-west-1.consul."
        assert [x.to_text() for x in r.answer] == [
            "ftp-us-west-1.example.org. 30 IN CNAME www-us-west-1.example.org.",
            "www-us-west-1.example.org. 30 IN A 192.0.2.9",
        ]
        assert [x.to_text() for x in r.authority] == ["consul. 30 IN NS ns-us-west-1.example.org."]
        assert [x.to_text() for x in r.additional] == ["ns-us-west-1.example.org. 30 IN A 192.0.2.53"]


async def test_suffix_answer_auto_reverts_values(backend) -> None:
    backend.reply = lambda req: make(
        req, RR(req.qlabel, QTYPE.CNAME, ttl=5, rdata=CNAME("web.google.com.")),
        RR("web.google.com.", QTYPE.A, ttl=5, rdata=A("192.0.2.2")))
    async with running(corefile("rewrite name suffix .schmoogle.com. .google.com. answer auto")) as srv:
        r = await query(srv.port(), "www.schmoogle.com", "A")
        assert asked(backend) == "www.google.com."
        assert [x.to_text() for x in r.answer] == [
            "www.schmoogle.com. 5 IN CNAME web.schmoogle.com.",
            "web.schmoogle.com. 5 IN A 192.0.2.2",
        ]


async def test_continue_applies_later_rules_and_reverts_in_reverse(backend) -> None:
    cf = corefile("rewrite continue name exact a.example. b.example.", "rewrite name exact b.example. c.example.",
                  "rewrite name exact c.example. d.example.")
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example", "A")
        assert asked(backend) == "c.example."  # the second rule stops
        assert owners(r) == ["a.example."]


async def test_stop_is_the_default_mode(backend) -> None:
    cf = corefile("rewrite name exact a.example. b.example.", "rewrite name exact b.example. c.example.")
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example", "A")
        assert asked(backend) == "b.example." and owners(r) == ["a.example."]
        await query(srv.port(), "b.example", "A")
        assert asked(backend) == "c.example."


async def test_invalid_name_after_rewrite_is_servfail(backend) -> None:
    cf = corefile(r"rewrite name regex ^([a-z]+)\.example\.$ {1}{1}{1}{1}{1}{1}{1}{1}.example.")
    async with running(cf) as srv:
        r = await query(srv.port(), "abcdefghij.example", "A")  # an 80-octet label
        assert r.rcode() == dns.rcode.SERVFAIL
        assert r.question[0].name.to_text() == "abcdefghij.example."
        assert not r.answer and not backend.seen
        r = await query(srv.port(), "abc.example", "A")  # 24 octets is fine
        assert r.rcode() == dns.rcode.NOERROR and asked(backend) == "abcabcabcabcabcabcabcabc.example."


# -- type, class ---------------------------------------------------------------------------------


async def test_type_rewrite_restores_the_question(backend) -> None:
    async with running(corefile("rewrite type AAAA A")) as srv:
        r = await query(srv.port(), "t.example", "AAAA")
        assert backend.seen[-1].qtype == QTYPE.A
        assert r.question[0].rdtype == dns.rdatatype.AAAA
        assert [x.to_text() for x in r.answer] == ["t.example. 100 IN A 192.0.2.1"]


async def test_class_rewrite(backend) -> None:
    async with running(corefile("chaos", "rewrite class CH IN")) as srv:
        r = await query(srv.port(), "c.example", "TXT", rdclass="CH")
        assert backend.seen[-1].qclass == 1
        assert r.rcode() == dns.rcode.NOERROR and r.question[0].rdclass == dns.rdataclass.CH


# -- response-only rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "backend_ttl", "want"), [
    ("30", 100, 30), ("30", 5, 30), ("30-", 10, 30), ("30-", 100, 100), ("-30", 100, 30), ("-30", 10, 10),
    ("20-40", 10, 20), ("20-40", 50, 40), ("20-40", 25, 25),
])
async def test_ttl_rule(backend, spec: str, backend_ttl: int, want: int) -> None:
    backend.reply = lambda req: make(
        req, RR(req.qlabel, QTYPE.A, ttl=backend_ttl, rdata=A("192.0.2.1")),
        auth=(RR("example.", QTYPE.NS, ttl=backend_ttl, rdata=NS("ns.example.")),),
        extra=(RR("ns.example.", QTYPE.A, ttl=backend_ttl, rdata=A("192.0.2.53")),))
    async with running(corefile(f"rewrite ttl exact t.example. {spec}")) as srv:
        r = await query(srv.port(), "t.example", "A", use_edns=0, want_dnssec=True)
        assert [x.ttl for x in (*r.answer, *r.authority, *r.additional)] == [want, want, want]
        assert r.edns == 0 and r.ednsflags & dns.flags.DO  # the OPT record is left alone
        r = await query(srv.port(), "u.example", "A")
        assert r.answer[0].ttl == backend_ttl


@pytest.mark.parametrize("rule", ["rcode exact nx.example. NXDOMAIN NOERROR", "rcode nx.example 3 0",
                                  "rcode suffix example. nxdomain noerror"])
async def test_rcode_rule(backend, rule: str) -> None:
    soa = RR("example.", QTYPE.SOA, ttl=30, rdata=SOA("ns.example.", "h.example.", (1, 2, 3, 4, 5)))
    backend.reply = lambda req: make(req, auth=(soa,), rcode=3)
    async with running(corefile("rewrite " + rule)) as srv:
        r = await query(srv.port(), "nx.example", "A")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        assert [x.to_text() for x in r.authority] == ["example. 30 IN SOA ns.example. h.example. 1 2 3 4 5"]
        r = await query(srv.port(), "nx.other", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN


async def test_cname_rule_rewrites_target_and_resolves_it(backend) -> None:
    def reply(req: Request) -> bytes:
        if req.name in ("new.target.example.", "other.target.example."):
            return make(req, RR(req.qlabel, QTYPE.A, ttl=20, rdata=A("192.0.2.22")))
        return make(req, RR(req.qlabel, QTYPE.CNAME, ttl=10, rdata=CNAME("orig.target.example.")),
                    RR("orig.target.example.", QTYPE.A, ttl=10, rdata=A("192.0.2.11")))

    backend.reply = reply
    async with running(corefile("rewrite cname exact orig.target.example. new.target.example.")) as srv:
        r = await query(srv.port(), "q.example", "A")
        assert [x.to_text() for x in r.answer] == [
            "q.example. 10 IN CNAME new.target.example.",
            "new.target.example. 20 IN A 192.0.2.22",
        ]
    async with running(corefile(r"rewrite cname regex ^orig\.(.*)$ other.{1}")) as srv:
        r = await query(srv.port(), "q.example", "A")
        assert [x.to_text() for x in r.answer] == [
            "q.example. 10 IN CNAME other.target.example.",
            "other.target.example. 20 IN A 192.0.2.22",
        ]


async def test_reverter_values_of_every_type_and_compression(backend) -> None:
    dname = RD(wire.text_to_wire("d.b.example."))

    def reply(req: Request) -> bytes:
        many = tuple(RR(req.qlabel, QTYPE.A, ttl=9, rdata=A(f"192.0.2.{i}")) for i in range(12))
        return make(
            req, *many,
            RR(req.qlabel, QTYPE.MX, ttl=9, rdata=MX("mail.b.example.", 10)),
            RR(req.qlabel, QTYPE.SRV, ttl=9, rdata=SRV(0, 0, 80, "srv.b.example.")),
            RR(req.qlabel, QTYPE.PTR, ttl=9, rdata=PTR("ptr.b.example.")),
            RR(req.qlabel, QTYPE.NAPTR, ttl=9, rdata=NAPTR(1, 2, b"S", b"SIP+D2U", b"", "naptr.b.example.")),
            RR(req.qlabel, 39, ttl=9, rdata=dname),
            auth=(RR("b.example.", QTYPE.SOA, ttl=9, rdata=SOA("ns.b.example.", "host.b.example.", (1, 2, 3, 4, 5))),),
            extra=(RR("x.b.example.", QTYPE.TXT, ttl=9, rdata=TXT("b.example.")),),
        )

    backend.reply = reply
    async with running(corefile("rewrite name exact a.example. b.example.")) as srv:
        r = await query(srv.port(), "a.example", "A")  # no EDNS: the reply must fit 512 octets
        assert not r.flags & dns.flags.TC
        got = {rr.to_text() for rrset in r.answer for rr in [rrset]}
        assert len([1 for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for _ in rrset]) == 12
        texts = "\n".join(sorted(got))
        for want in ("a.example. 9 IN MX 10 mail.a.example.", "a.example. 9 IN SRV 0 0 80 srv.a.example.",
                     "a.example. 9 IN PTR ptr.a.example.", "a.example. 9 IN DNAME d.a.example.",
                     'a.example. 9 IN NAPTR 1 2 "S" "SIP+D2U" "" naptr.a.example.'):
            assert want in texts
        assert [x.to_text() for x in r.authority] == ["a.example. 9 IN SOA ns.a.example. host.b.example. 1 2 3 4 5"]
        assert [x.to_text() for x in r.additional] == ['x.a.example. 9 IN TXT "b.example."']


# -- the reverter in stop mode -------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [wire.REFUSED, wire.SERVFAIL, PluginError(wire.SERVFAIL, "backend broke")])
async def test_stop_rule_writes_unwritten_rcodes_with_the_original_question(backend, outcome) -> None:
    backend.reply = lambda req: outcome
    async with running(corefile("errors", "rewrite name exact a.example. b.example.")) as srv:
        for tcp in (False, True):
            r = await query(srv.port(), "a.example", "A", tcp=tcp)
            want = outcome.rcode if isinstance(outcome, PluginError) else outcome
            assert r.rcode() == want
            assert r.question[0].name.to_text() == "a.example." and not r.answer
            assert asked(backend) == "b.example."


async def test_garbage_from_below_is_passed_on_and_serving_continues(backend) -> None:
    backend.reply = lambda req: req.wire[:2] + b"\x81\x80\x00\x01\x00\x09"
    async with running(corefile("rewrite name exact g.example. h.example.")) as srv:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.connect(("127.0.0.1", srv.port()))
            await sock.send(dns.message.make_query("g.example", "A").to_wire())
            with trio.fail_after(3):
                data = await sock.recv(4096)
        assert data[2:8] == b"\x81\x80\x00\x01\x00\x09"
        backend.reply = None
        r = await query(srv.port(), "g.example", "A")
        assert owners(r) == ["g.example."]


# -- edns0 ----------------------------------------------------------------------------------------


def options(backend) -> dict[int, bytes]:
    edns = backend.seen[-1].edns
    assert edns is not None
    return dict(edns.option_list())


async def test_edns0_local_set_append_replace_and_variables(backend) -> None:
    cf = corefile(
        "rewrite continue edns0 local set 0xffee 0x61626364",
        "rewrite continue edns0 local set 65000 text",
        "rewrite continue edns0 local append 0xffee zzzz",
        "rewrite continue edns0 local set 65001 {qname}",
        "rewrite continue edns0 local set 65002 {client_ip}",
        "rewrite continue edns0 local set 65003 {qtype}",
        "rewrite continue edns0 local set 65004 {protocol}",
        "rewrite continue edns0 local set 65005 {client_port}",
        "rewrite continue edns0 local replace 65006 nothere",
        "rewrite edns0 nsid append",
    )
    async with running(cf) as srv:
        r = await query(srv.port(), "Vars.example", "A", use_edns=0)
        got = options(backend)
        assert got[0xFFEE] == b"abcd" and got[65000] == b"text"
        assert got[65001] == b"Vars.example." and got[65002] == bytes([127, 0, 0, 1])
        assert got[65003] == b"\x00\x01" and got[65004] == b"udp" and len(got[65005]) == 2
        assert 65006 not in got and got[3] == b""
        assert r.rcode() == dns.rcode.NOERROR and r.edns == 0
        await query(srv.port(), "v.example", "A", tcp=True)
        assert options(backend)[65004] == b"tcp"


async def test_edns0_without_client_opt_adds_one_below_but_not_in_the_reply(backend) -> None:
    async with running(corefile("rewrite edns0 local set 0xffee abcd")) as srv:
        r = await query(srv.port(), "n.example", "A")
        assert options(backend) == {0xFFEE: b"abcd"}
        assert backend.seen[-1].edns.udp_size == 4096
        assert r.edns == -1 and owners(r) == ["n.example."]


async def test_edns0_subnet_and_unset(backend) -> None:
    async with running(corefile("rewrite edns0 subnet set 24 56")) as srv:
        await query(srv.port(), "s.example", "A", use_edns=0)
        assert options(backend)[8] == b"\x00\x01\x18\x00\x7f\x00\x00"
        ecs = dns.edns.ECSOption("10.1.2.3", 16)
        await query(srv.port(), "s.example", "A", use_edns=0, options=[ecs])
        assert options(backend)[8] == b"\x00\x01\x10\x00\x7f\x00"  # the client's shorter mask is kept
    async with running(corefile("rewrite edns0 subnet unset")) as srv:
        await query(srv.port(), "s.example", "A", use_edns=0, options=[dns.edns.ECSOption("10.1.2.3", 16)])
        assert 8 not in options(backend)
    async with running(corefile("rewrite edns0 local unset 0xffee")) as srv:
        opt = dns.edns.GenericOption(0xFFEE, b"x")
        await query(srv.port(), "s.example", "A", use_edns=0, options=[opt, dns.edns.GenericOption(0xFFEF, b"y")])
        assert options(backend) == {0xFFEF: b"y"}


async def test_block_form_with_continue(backend) -> None:
    cf = corefile("rewrite continue {", "    name exact a.example. b.example.", "}",
                  "rewrite name suffix .example. .test.")
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example", "A")
        assert asked(backend) == "b.test."
        assert owners(r) == ["b.test."]  # only the exact rule reverts, and b.test. is not its name



async def test_odd_names_never_panic(backend) -> None:
    """Binary labels, escaped dots and maximum-length names through every rule kind and template."""
    from pycoredns import metrics

    cf = (". {\n    rewrite continue name regex ^(.*)[.]example[.]$ {1}.{1}.example.\n"
          "    rewrite continue name suffix .example. .test. answer auto\n"
          "    rewrite continue ttl regex .* 10-\n"
          "    rewrite continue edns0 local set 0xffee {qname}\n"
          "    rewrite stop name substring a b\n"
          "    template ANY ANY test {\n      answer \"{{ .Name }} 5 IN TXT {{ .Name }}\"\n    }\n"
          "    rwtest_backend\n}\n")
    long = [b"x" * 63, b"y" * 63, b"z" * 61, b"example", b""]
    names = [dns.name.Name([b"\x00\xff.", b"example", b""]), dns.name.Name([b"a.b", b"example", b""]),
             dns.name.Name(long), dns.name.Name([b"A" * 63, b"example", b""]), dns.name.root]
    async with running(cf) as srv:
        panics = metrics.panics_total.get()
        for name in names:
            for tcp in (False, True):
                r = await query(srv.port(), name.to_text(), "TXT", tcp=tcp)
                assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.SERVFAIL)
                assert r.question[0].name == name
        assert metrics.panics_total.get() == panics


async def test_edns0_local_code_is_mirrored_like_supported_options(backend) -> None:
    """CoreDNS's SetSupportedOption: the server mirrors the client's option with that code."""
    async with running(corefile("rewrite edns0 local set 0xffed abcd")) as srv:
        r = await query(srv.port(), "m.example", "A", use_edns=0,
                        options=[dns.edns.GenericOption(0xFFED, b"cl"), dns.edns.GenericOption(0xFFE0, b"no")])
        assert options(backend) == {0xFFED: b"abcd", 0xFFE0: b"no"}
        assert [(o.otype, o.data) for o in r.options] == [(0xFFED, b"cl")]


async def test_reverted_name_beyond_255_octets_stays_as_written():
    """`answer auto` would turn whoami's `_udp.<rewritten>` back into `_udp.<253-octet qname>`: 258 octets,
    no name; the record keeps the rewritten owner and the reply parses (found by tests/fuzz/packet.py)."""
    first = ".".join(["a" * 63] * 3 + ["d" * 44])
    qname = f"{first}.rw.example.org."
    assert len(dns.name.from_text(qname).to_wire()) == 253
    corefile = ". {\n rewrite name regex (.*)\\.rw\\.example\\.org {1}.example.org answer auto\n whoami\n}\n"
    async with running(corefile) as srv:
        r = await query(srv.port(), qname, "A")
        assert r.rcode() == 0
        owners = [rr.name.to_text() for rr in r.additional]  # the reply parses: every name is valid
        assert qname in owners and all(len(dns.name.from_text(o).to_wire()) <= 255 for o in owners)
