"""transfer out of `file` through a running server: AXFR/IXFR over TCP, ACLs, NOTIFY."""

from __future__ import annotations

import socket

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import trio
from conftest import query, running
from file.zones import SOA, write_zone


async def xfr(port: int, q: dns.message.Message) -> list[dns.message.Message]:
    """Every message of one zone transfer on a TCP connection (until the closing SOA or EOF)."""
    out: list[dns.message.Message] = []
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        data = q.to_wire()
        await stream.send_all(len(data).to_bytes(2, "big") + data)
        buf = b""
        soas = 0
        with trio.fail_after(5):
            while soas < 2:
                while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return out
                    buf += chunk
                size = int.from_bytes(buf[:2], "big")
                m = dns.message.from_wire(buf[2 : 2 + size], one_rr_per_rrset=True)
                buf = buf[2 + size :]
                out.append(m)
                soas += sum(1 for rr in m.answer if rr.rdtype == dns.rdatatype.SOA)
                if m.rcode() != dns.rcode.NOERROR or (soas == 1 and len(m.answer) == 1):
                    break
    return out


def corefile(path, to: str = "*") -> str:
    return f"example.org {{\n transfer {{\n  to {to}\n }}\n file {path}\n}}\n"


async def test_axfr(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        msgs = await xfr(srv.port(), dns.message.make_query("example.org.", "AXFR"))
    assert len(msgs) == 1 and msgs[0].flags & dns.flags.AA
    lines = [rr.to_text() for rr in msgs[0].answer]
    assert lines[0] == lines[-1] == SOA, lines
    assert len(lines) == 22
    assert "ns.sub.example.org. 3600 IN A 192.0.2.99" in lines  # glue goes out too


async def test_ixfr_answered_as_axfr_or_up_to_date(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path))) as srv:
        q = dns.message.make_query("example.org.", "IXFR")
        q.authority.append(dns.rrset.from_text("example.org.", 0, "IN", "SOA", "ns1. admin. 2024010100 1 1 1 1"))
        msgs = await xfr(srv.port(), q)
        assert len(msgs[0].answer) == 22
        q.authority[0] = dns.rrset.from_text("example.org.", 0, "IN", "SOA", "ns1. admin. 2024010101 1 1 1 1")
        msgs = await xfr(srv.port(), q)
        assert [rr.to_text() for rr in msgs[0].answer] == [SOA] and not msgs[0].flags & dns.flags.AA
        msgs = await xfr(srv.port(), dns.message.make_query("example.org.", "IXFR"))  # no SOA: SERVFAIL
        assert msgs[0].rcode() == dns.rcode.SERVFAIL


async def test_refusals(tmp_path) -> None:
    async with running(corefile(write_zone(tmp_path), to="192.0.2.1")) as srv:
        r = await query(srv.port(), "example.org.", "AXFR")  # UDP
        assert r.rcode() == dns.rcode.REFUSED
        msgs = await xfr(srv.port(), dns.message.make_query("example.org.", "AXFR"))
        assert msgs[0].rcode() == dns.rcode.REFUSED and msgs[0].answer == []


async def test_notify_on_startup(tmp_path) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with sock:
        async with running(corefile(write_zone(tmp_path), to=f"127.0.0.1:{port}")):
            with trio.fail_after(5):
                data, addr = await sock.recvfrom(512)
            m = dns.message.from_wire(data)
            assert m.opcode() == dns.opcode.NOTIFY and m.question[0].name.to_text() == "example.org."
            reply = dns.message.make_response(m)
            await sock.sendto(reply.to_wire(), addr)
