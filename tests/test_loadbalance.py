"""loadbalance plugin: shuffling through a running server (wire and dnslib paths), prefer, ordering rules."""

from __future__ import annotations

import dns.rcode
import pytest
import trio
from conftest import query, running
from dnslib import AAAA, CNAME, MX, RR, TXT, A, DNSRecord
from pycoredns.plugins.loadbalance import LoadBalance

from pycoredns.instance import StartupError

ADDRS = [f"10.0.0.{i}" for i in range(1, 7)]


def _hosts(tmp_path) -> str:
    f = tmp_path / "hosts"
    f.write_text("".join(f"{ip} web.example.org\n" for ip in ADDRS) + "2001:db8::1 web.example.org\n")
    return str(f)


def _order(r) -> list[str]:
    return [rd.to_text() for rrset in r.answer for rd in rrset]


async def _orders(port: int, name: str, n: int = 30) -> list[tuple[str, ...]]:
    return [tuple(_order(await query(port, name, "A"))) for _ in range(n)]


async def test_shuffles_wire_and_dnslib_paths(tmp_path):
    async with running(f"example.org {{\n loadbalance\n hosts {_hosts(tmp_path)}\n}}\n") as srv:
        for name in ("web.example.org", "WEB.Example.org"):  # pointer owners (wire) / spelled owners (dnslib)
            orders = await _orders(srv.port(), name)
            assert all(sorted(o) == sorted(ADDRS) for o in orders)
            assert len(set(orders)) > 1
        # non-NOERROR and NODATA replies go out untouched
        r = await query(srv.port(), "nope.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        r = await query(srv.port(), "web.example.org", "MX", tcp=True)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer


async def test_prefer_moves_subnet_first(tmp_path):
    lb = "loadbalance round_robin {\n  prefer 10.0.0.5/32 10.0.0.0/31\n }"
    cf = f"example.org {{\n {lb}\n hosts {_hosts(tmp_path)}\n}}\n"
    async with running(cf) as srv:
        for o in await _orders(srv.port(), "web.example.org", 10):
            assert o[:2] == ("10.0.0.5", "10.0.0.1")
            assert sorted(o) == sorted(ADDRS)


def _mixed() -> DNSRecord:
    rec = DNSRecord.question("x.example.org", "A").reply()
    rec.add_answer(RR("x.example.org", 15, rdata=MX("mx1.example.org", 10)),
                   RR("x.example.org", 1, rdata=A("10.0.0.1")),
                   RR("x.example.org", 16, rdata=TXT("t")),
                   RR("x.example.org", 5, rdata=CNAME("y.example.org")),
                   RR("y.example.org", 28, rdata=AAAA("2001:db8::1")),
                   RR("x.example.org", 15, rdata=MX("mx2.example.org", 20)))
    return rec


@pytest.mark.parametrize("as_bytes", [False, True])
def test_section_order(as_bytes):
    lb = LoadBalance([])
    for _ in range(10):
        out = lb.reorder(_mixed().pack() if as_bytes else _mixed())
        rec = DNSRecord.parse(out) if isinstance(out, bytes) else out
        types = [rr.rtype for rr in rec.rr]
        assert types[:2] == [5, 16]  # CNAMEs, then the rest in order
        assert sorted(types[2:4]) == [1, 28] and types[4:] == [15, 15]


def test_wire_path_keeps_opt_and_moves_only_bytes():
    rec = DNSRecord.question("x.example.org", "A").reply()
    for ip in ADDRS:
        rec.add_answer(RR("x.example.org", 1, rdata=A(ip), ttl=30))
    data = rec.pack()
    data = data[:10] + b"\x00\x01" + data[12:] + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
    lb = LoadBalance([])
    seen = set()
    for _ in range(20):
        out = lb.reorder(data)
        assert isinstance(out, bytes) and len(out) == len(data) and out.endswith(data[-11:])
        parsed = DNSRecord.parse(out)
        assert sorted(str(rr.rdata) for rr in parsed.rr) == sorted(ADDRS)
        assert all(rr.ttl == 30 for rr in parsed.rr)
        seen.add(out)
    assert len(seen) > 1
    # garbage and error replies pass through unchanged
    assert lb.reorder(data[:40]) == data[:40]
    refused = data[:3] + bytes([data[3] | 5]) + data[4:]
    assert lb.reorder(refused) == refused


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("loadbalance round_robin x", "Error during parsing: unknown property for round_robin"),
        ("loadbalance random", "plugin/loadbalance: unknown policy: random"),
        ("loadbalance {\n  prefer 10.0.0.1\n }", 'Error during parsing: invalid CIDR "10.0.0.1"'),
        ("loadbalance {\n  shuffle\n }", "Error during parsing: unknown property 'shuffle'"),
    ],
)
async def test_config_errors(line, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n {line}\n whoami\n}}\n"):
            pass
    assert message in str(ei.value)


def _opt() -> bytes:
    return b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"


def test_general_wire_path_orders_additional():
    """Answers and additional of address records plus an OPT: OPT ("other") moves before the addresses."""
    rec = DNSRecord.question("x.example.org", "AAAA").reply()
    for i in range(3):
        rec.add_answer(RR("x.example.org", 28, rdata=AAAA(f"2001:db8::{i + 1}")))
    rec.add_ar(RR("x.example.org", 1, rdata=A("10.0.0.1")))
    rec.add_ar(RR("x.example.org", 1, rdata=A("10.0.0.2")))
    data = bytes(rec.pack())
    data = data[:10] + b"\x00\x03" + data[12:] + _opt()
    out = LoadBalance([]).reorder(data)
    assert isinstance(out, bytes) and len(out) == len(data)
    assert out[-(2 * 16) - 11 : -(2 * 16)] == _opt()  # OPT first in the additional section
    parsed = DNSRecord.parse(out)
    assert sorted(str(rr.rdata) for rr in parsed.rr) == [f"2001:db8::{i}" for i in (1, 2, 3)]
    assert sorted(str(rr.rdata) for rr in parsed.ar if rr.rtype == 1) == ["10.0.0.1", "10.0.0.2"]


async def _tops(port: int, n: int = 30) -> list[str]:
    return [_order(await query(port, "web.example.org", "A"))[0] for _ in range(n)]


async def test_weighted_top_record_and_reload(tmp_path):
    weights = tmp_path / "weights"
    weights.write_text("# weights\nweb.example.org\n10.0.0.3 255\n10.0.0.4 1\n")
    cf = f"example.org {{\n loadbalance weighted {weights} {{\n  reload 50ms\n }}\n hosts {_hosts(tmp_path)}\n}}\n"
    async with running(cf) as srv:
        tops = await _tops(srv.port())
        assert tops.count("10.0.0.3") >= 20  # weight 255 of 260
        r = await query(srv.port(), "web.example.org", "A")
        assert sorted(_order(r)) == sorted(ADDRS)
        weights.write_text("web.example.org.\n10.0.0.6 255\n")
        for _ in range(100):  # bounded: 100 x 20ms for the reload to land
            if await _tops(srv.port(), 5) == ["10.0.0.6"] * 5:
                break
            await trio.sleep(0.02)
        assert (await _tops(srv.port())).count("10.0.0.6") >= 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1\n", 'wrong domain name:"10.0.0.1" in weight file'),
        ("a.example.\n10.0.0.1 0\n", 'wrong weight value:"0" in weight file'),
        ("a.example.\n10.0.0.1 256\n", 'wrong weight value:"256" in weight file'),
        ("a.example.\nnope 3\n", 'wrong IP address:"nope" in weight file'),
        ("10.0.0.1 3\n", "missing domain name in weight file"),
        ("a b c\n", 'could not parse weight line:"a b c" in weight file'),
    ],
)
async def test_weight_file_errors(tmp_path, text, message):
    weights = tmp_path / "weights"
    weights.write_text(text)
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n loadbalance weighted {weights}\n whoami\n}}\n"):
            pass
    assert str(ei.value).startswith("plugin/loadbalance: " + message)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("loadbalance weighted", "Error during parsing: missing weight file argument"),
        ("loadbalance weighted a b", "Error during parsing: unexpected argument(s)"),
        ("loadbalance weighted /nonexistent {\n  reload 0\n }", "plugin/loadbalance: weight file open error"),
        ("loadbalance weighted /x {\n  reload\n }", "Error during parsing: reload duration value is missing"),
        ("loadbalance weighted /x {\n  reload 1 2\n }", "Error during parsing: unexpected argument"),
        ("loadbalance weighted /x {\n  reload 5\n }", "Error during parsing: invalid reload duration '5'"),
        ("loadbalance weighted /x {\n  prefer 10.0.0.0/8\n }", "Error during parsing: unknown property 'prefer'"),
    ],
)
async def test_weighted_config_errors(line, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n {line}\n whoami\n}}\n"):
            pass
    assert message in str(ei.value)


async def test_weighted_missing_file_with_reload_only_warns(tmp_path):
    cf = f"example.org {{\n loadbalance weighted {tmp_path}/none\n hosts {_hosts(tmp_path)}\n}}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "web.example.org", "A")
        assert sorted(_order(r)) == sorted(ADDRS)


@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfers_untouched(qtype):
    rec = DNSRecord.question("x.example.org", qtype).reply()
    for ip in ADDRS:
        rec.add_answer(RR("x.example.org", 1, rdata=A(ip)))
    data = bytes(rec.pack())
    lb = LoadBalance([])
    for _ in range(10):
        assert lb.reorder(data) == data
        assert [str(rr.rdata) for rr in lb.reorder(DNSRecord.parse(data)).rr] == ADDRS
