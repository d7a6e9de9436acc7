"""hosts: answers from files and inline entries, PTR, fallthrough, reloads, files that are (or turn into) garbage."""

from __future__ import annotations

import os

import dns.rcode
import dns.rdatatype
import pytest
import trio
from broken_corefiles import block, eventually
from conftest import query, running

from pycoredns import metrics

AA = 0x0400


HOSTS_FILE = """\
# a comment line
10.0.0.1   web.example.org www.example.org   # trailing comment
10.0.0.2   web.example.org
fe80::1%eth0  web.example.org
2001:db8::5   v6only.example.org
::ffff:192.0.2.9  mapped.example.org
not-an-ip  broken.example.org
10.0.0.9
192.0.2.1  outside.example.net
"""


def _rdata(r, rdtype: str) -> list[str]:
    return [rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rd in rrset]


def _corefile(path: str, extra: str = "", zones: str = "") -> str:
    return f"example.org {{\n hosts {path} {zones} {{\n{extra}\n }}\n whoami\n}}\n"


async def _serve_and_query(corefile: str, name: str, want: str) -> None:
    async with running(corefile) as srv:
        r = await query(srv.port(), name, "A")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == [want]


async def test_file_and_inline_answers(tmp_path):
    f = tmp_path / "hosts"
    f.write_text(HOSTS_FILE)
    cf = _corefile(str(f), "  10.0.0.3 web.example.org\n  ttl 300")
    async with running(cf) as srv:
        r = await query(srv.port(), "web.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & AA
        assert _rdata(r, "A") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # file first, then inline
        assert r.answer[0].ttl == 300
        r = await query(srv.port(), "web.example.org", "AAAA", tcp=True)
        assert _rdata(r, "AAAA") == ["fe80::1"]  # the IPv6 zone is stripped
        r = await query(srv.port(), "mapped.example.org", "A")
        assert _rdata(r, "A") == ["192.0.2.9"]
        r = await query(srv.port(), "www.example.org", "A")
        assert _rdata(r, "A") == ["10.0.0.1"]


async def test_nodata_servfail_and_default_ttl(tmp_path):
    f = tmp_path / "hosts"
    f.write_text(HOSTS_FILE)
    hits = metrics.REGISTRY.metrics["coredns_hosts_hits_total"]
    async with running(_corefile(str(f))) as srv:
        before = hits.get()
        for qtype in ("AAAA", "MX", "TXT"):
            r = await query(srv.port(), "www.example.org", qtype)
            assert r.rcode() == dns.rcode.NOERROR and r.flags & AA
            assert not r.answer and not r.authority  # NODATA without SOA
        r = await query(srv.port(), "v6only.example.org", "AAAA")
        assert r.answer[0].ttl == 3600
        # nonexistent name, no fallthrough: SERVFAIL written by the server
        r = await query(srv.port(), "missing.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert not r.answer
        # garbage lines were skipped, not fatal
        r = await query(srv.port(), "broken.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert hits.get() == before + 4  # answers and NODATA count, SERVFAILs do not


async def test_fallthrough_and_zones(tmp_path):
    f = tmp_path / "hosts"
    f.write_text(HOSTS_FILE)
    cf = f". {{\n hosts {f} example.org {{\n  fallthrough sub.example.org\n }}\n whoami\n}}\n"
    async with running(cf) as srv:
        # outside the hosts zones: next plugin (whoami) regardless of fallthrough
        r = await query(srv.port(), "outside.example.net", "A")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.additional
        # inside, fallthrough zone: next
        r = await query(srv.port(), "x.sub.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.additional
        # inside, not in fallthrough zones: SERVFAIL
        r = await query(srv.port(), "x.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL


async def test_ptr_and_no_reverse(tmp_path):
    f = tmp_path / "hosts"
    f.write_text(HOSTS_FILE)
    # PTR works for reverse names outside the hosts zones (a root block routes them to hosts)
    cf = f". {{\n hosts {f} example.org\n whoami\n}}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "1.0.0.10.in-addr.arpa", "PTR")
        assert r.flags & AA
        assert _rdata(r, "PTR") == ["web.example.org.", "www.example.org."]
        assert str(r.answer[0].name) == "1.0.0.10.in-addr.arpa."
        r = await query(srv.port(), "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "PTR")
        assert _rdata(r, "PTR") == ["v6only.example.org."]
        # reverse miss and names outside the zones: next plugin
        r = await query(srv.port(), "1.2.0.192.in-addr.arpa", "PTR")
        assert not r.answer and r.additional
        r = await query(srv.port(), "99.0.0.10.in-addr.arpa", "PTR")
        assert not r.answer and r.additional
    cf = f". {{\n hosts {f} example.org {{\n  no_reverse\n }}\n whoami\n}}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "1.0.0.10.in-addr.arpa", "PTR")
        assert not r.answer and r.additional
        r = await query(srv.port(), "web.example.org", "A")
        assert len(_rdata(r, "A")) == 2


async def test_owner_is_lowercased_qname(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 Web.Example.ORG\n")
    async with running(_corefile(str(f))) as srv:
        r = await query(srv.port(), "WEB.example.org", "A")
        assert _rdata(r, "A") == ["10.0.0.1"]
        assert r.answer[0].name.to_text() == "web.example.org."
        assert r.question[0].name.to_text() == "WEB.example.org."


async def test_reload_on_change(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 web.example.org\n")
    async with running(_corefile(str(f), "  reload 50ms")) as srv:
        r = await query(srv.port(), "web.example.org", "A")
        assert _rdata(r, "A") == ["10.0.0.1"]
        # CoreDNS's Map.Len: one address entry plus its generated PTR entry
        assert metrics.REGISTRY.metrics["coredns_hosts_entries"].get() == 2
        f.write_text("10.0.0.7 web.example.org\n10.0.0.8 new.example.org\n")
        st = os.stat(f)
        os.utime(f, (st.st_atime, st.st_mtime + 5))
        answers: list[str] = []
        for _ in range(100):  # bounded: 100 x 20ms
            answers = _rdata(await query(srv.port(), "new.example.org", "A"), "A")
            if answers:
                break
            await trio.sleep(0.02)
        assert answers == ["10.0.0.8"]
        assert _rdata(await query(srv.port(), "web.example.org", "A"), "A") == ["10.0.0.7"]
        assert metrics.REGISTRY.metrics["coredns_hosts_entries"].get() == 4
        stamp = metrics.REGISTRY.metrics["coredns_hosts_reload_timestamp_seconds"].get()
        assert stamp == pytest.approx(os.stat(f).st_mtime)


async def test_names_that_cannot_be_on_the_wire_are_skipped(tmp_path):
    f = tmp_path / "hosts"
    long_label = "a" * 300
    f.write_bytes(f"10.0.0.1 {long_label}.example.org x..y.example.org {'b' * 70}.example.org ok.example.org\n"
                  "10.0.0.2 \xff\xfe.example.org\n\x00\x01 garbage\n".encode("latin-1"))
    async with running(_corefile(str(f))) as srv:
        assert _rdata(await query(srv.port(), "ok.example.org", "A"), "A") == ["10.0.0.1"]
        r = await query(srv.port(), "1.0.0.10.in-addr.arpa", "PTR")  # not in the block: REFUSED, still alive
        assert r.rcode() == dns.rcode.REFUSED
    async with running(f". {{\n hosts {f} example.org\n}}\n") as srv:
        r = await query(srv.port(), "1.0.0.10.in-addr.arpa", "PTR")
        assert _rdata(r, "PTR") == ["ok.example.org."]


async def test_reload_zero_disables_polling(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 web.example.org\n")
    for reload, polled in (("0", False), ("50ms", True), (None, True)):
        body = f"  reload {reload}" if reload else ""
        async with running(_corefile(str(f), body)) as srv:
            h = next(x for x in srv.instance.blocks[0].handlers if x.name == "hosts")
            assert any(getattr(fn, "__self__", None) is h for fn, _ in srv.instance.scope.background) is polled
            assert h.reload == {"0": 0.0, "50ms": 0.05, None: 5.0}[reload]
            assert _rdata(await query(srv.port(), "web.example.org", "A"), "A") == ["10.0.0.1"]


async def test_wildcard_matches_one_label(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("10.0.0.9 *.wild.example.org\n10.0.0.8 x.wild.example.org\n")
    async with running(f". {{\n hosts {f} example.org\n whoami\n}}\n") as srv:
        r = await query(srv.port(), "a.Wild.example.org", "A")
        assert _rdata(r, "A") == ["10.0.0.9"] and r.answer[0].name.to_text() == "a.wild.example.org."
        assert _rdata(await query(srv.port(), "x.wild.example.org", "A"), "A") == ["10.0.0.8"]  # exact wins
        r = await query(srv.port(), "a.wild.example.org", "AAAA")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer  # the name exists: NODATA
        for name in ("wild.example.org", "b.a.wild.example.org"):  # not the apex, not two labels
            assert (await query(srv.port(), name, "A")).rcode() == dns.rcode.SERVFAIL
        r = await query(srv.port(), "9.0.0.10.in-addr.arpa", "PTR")  # no PTR for wildcards: next plugin
        assert not r.answer and r.additional


async def test_hosts_garbage_file_answers(tmp_path):
    p = tmp_path / "hosts"
    p.write_bytes(
        b"\xff\xfe garbage\n300.1.1.1 bad\n1.2.3.4\n::1%zz foo\n" + b"a" * 5000 + b"\n"
        b"10.0.0.1 " + b"x" * 70 + b".example.\n\x00\x00\n10.0.0.2 good.example.\n"
    )
    await _serve_and_query(block(f" hosts {p}\n errors"), "good.example.", "10.0.0.2")


async def test_hosts_file_turning_to_garbage_at_runtime(tmp_path):
    """The reload loop survives a file that becomes binary junk, vanishes, or becomes a directory."""
    p = tmp_path / "hosts"
    p.write_text("10.0.0.2 good.example.\n")
    panics = metrics.panics_total.get()
    async with running(block(f" hosts {p} {{\n  reload 50ms\n }}\n errors")) as srv:
        port = srv.port()

        async def answers(want: str) -> bool:
            m = await query(port, "good.example.", "A")
            return [rr.to_text() for rrset in m.answer for rr in rrset] == [want]

        await eventually(lambda: answers("10.0.0.2"))
        p.write_bytes(b"\xff\x00\xfe" * 1000 + b"\n10.0.0.3 good.example.\n" + b"\x00" * 100)
        await eventually(lambda: answers("10.0.0.3"))
        p.unlink()
        await trio.sleep(0.2)
        p.mkdir()
        await trio.sleep(0.2)
        p.rmdir()
        p.write_text("10.0.0.4 good.example.\n")
        await eventually(lambda: answers("10.0.0.4"))
    assert metrics.panics_total.get() == panics
