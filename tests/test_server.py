"""The server core against real sockets: accept checks, routing, scrub, TCP framing."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio
from conftest import query, running

TWO_ZONES = """
example.org {
    whoami
}
. {
    chaos CoreDNS-test
}
sub.example.org {
}
"""


async def udp_raw(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.sendto(payload, ("127.0.0.1", port))
        with trio.move_on_after(timeout):
            data, _ = await sock.recvfrom(65535)
            return data
    return None


def header(data: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack(">HHHHHH", data[:12])


async def test_longest_zone_wins_and_root_is_last_resort():
    async with running(TWO_ZONES) as srv:
        r = await query(srv.port(), "www.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.additional  # whoami answered
        # "." has only chaos, which passes IN queries on: no next plugin -> SERVFAIL written by server
        r = await query(srv.port(), "example.net", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert not r.answer and not r.additional


async def test_zone_without_plugins_is_refused():
    async with running(TWO_ZONES) as srv:
        r = await query(srv.port(), "a.sub.example.org", "A")
        assert r.rcode() == dns.rcode.REFUSED


async def test_no_matching_zone_is_refused_with_question_and_opt():
    async with running("example.org {\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.net", "A", use_edns=0, payload=1232)
        assert r.rcode() == dns.rcode.REFUSED
        assert r.question[0].name.to_text() == "example.net."
        assert r.edns == 0 and r.payload == 1232  # OPT mirrored from the request
        assert not r.flags & dns.flags.AA


async def test_ds_goes_to_the_parent_side():
    cf = "example.org {\n whoami\n}\nsub.example.org {\n any\n}\n"
    async with running(cf) as srv:
        r = await query(srv.port(), "sub.example.org", "DS")
        assert r.rcode() == dns.rcode.NOERROR and r.additional  # served by example.org's whoami
        r = await query(srv.port(), "sub.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL  # sub's chain: any has no next


async def test_non_in_class_refused_unless_chaos():
    async with running("example.org {\n whoami\n}\n") as srv:
        r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
        assert r.rcode() == dns.rcode.REFUSED
    async with running(". {\n chaos CoreDNS-test a b\n}\n") as srv:
        r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
        assert r.rcode() == dns.rcode.NOERROR
        assert [rr.to_text() for rr in r.answer[0]] == ['"CoreDNS-test"']
        assert r.answer[0].ttl == 0
        r = await query(srv.port(), "authors.bind", "TXT", rdclass="CH")
        assert sorted(rr.to_text() for rr in r.answer[0]) == ['"a"', '"b"']


async def test_garbage_gets_formerr_and_short_packets_get_nothing():
    async with running(". {\n whoami\n}\n") as srv:
        # header says one question but the name overruns the packet
        pkt = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x3fabc"
        data = await udp_raw(srv.port(), pkt)
        assert data is not None
        qid, flags, qd, an, ns, ar = header(data)
        assert qid == 0x1234 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
        assert (qd, an, ns, ar) == (0, 0, 0, 0)
        assert await udp_raw(srv.port(), b"\x00\x01\x02", timeout=0.3) is None
        # two questions -> FORMERR
        q = dns.message.make_query("a.example.", "A").to_wire()
        two = q[:4] + b"\x00\x02" + q[6:] + q[12:]
        data = await udp_raw(srv.port(), two)
        assert data is not None and header(data)[1] & 0xF == dns.rcode.FORMERR
        # responses (QR=1) are ignored
        resp = bytearray(q)
        resp[2] |= 0x80
        assert await udp_raw(srv.port(), bytes(resp), timeout=0.3) is None
        # the server still serves after all that
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == 0


async def test_queries_read_as_miekg_reads_them():
    """What CoreDNS's miekg/dns accepts or refuses (found comparing both with the differential run)."""
    q = dns.message.make_query("example.org.", "A").to_wire()
    hdr = q[:10]
    async with running(". {\n whoami\n}\n") as srv:
        async def rcode_of(pkt: bytes) -> tuple[int, int]:
            data = await udp_raw(srv.port(), pkt)
            assert data is not None
            return header(data)[1] & 0xF, header(data)[2]

        # header only, one question announced: no question at all (SERVFAIL, as CoreDNS's server)
        assert await rcode_of(q[:12]) == (dns.rcode.SERVFAIL, 0)
        # a question cut right after its name is type 0, class 0, and answered (class 0 is not IN)
        assert await rcode_of(q[:-4]) == (dns.rcode.REFUSED, 1)
        # an additional count larger than the records present ends at the message's end
        assert await rcode_of(hdr + b"\x00\x01" + q[12:]) == (dns.rcode.NOERROR, 1)
        # an OPT record whose owner is not the root is still the OPT
        opt = b"\x07example\x03org\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
        assert await rcode_of(hdr + b"\x00\x01" + q[12:] + opt) == (dns.rcode.NOERROR, 1)
        # options miekg cannot unpack, and a TSIG with bad rdata: FORMERR with the question
        for rdata in (b"\x00\x0a\x00\x10\x01\x02",  # option length past the rdata
                      b"\x00\x08\x00\x05\x00\x09\x08\x00\x0a",  # client subnet, family 9
                      b"\x00\x0b\x00\x01\x00"):  # TCP keepalive of 1 byte
            opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(rdata)) + rdata
            assert await rcode_of(hdr + b"\x00\x01" + q[12:] + opt) == (dns.rcode.FORMERR, 1)
        tsig = b"\x03key\x00" + struct.pack(">HHIH", 250, 255, 0, 2) + b"\xab\xcd"
        assert await rcode_of(hdr + b"\x00\x01" + q[12:] + tsig) == (dns.rcode.FORMERR, 1)
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == 0


async def test_unknown_opcode_is_notimp():
    async with running(". {\n whoami\n}\n") as srv:
        q = bytearray(dns.message.make_query("example.org.", "A").to_wire())
        q[2] = (q[2] & 0x87) | (2 << 3)  # opcode STATUS
        data = await udp_raw(srv.port(), bytes(q))
        assert data is not None
        flags = header(data)[1]
        assert flags & 0xF == dns.rcode.NOTIMP and (flags >> 11) & 0xF == 2


async def test_edns_version_1_gets_badvers():
    async with running(". {\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org", "A", use_edns=1)
        assert r.rcode() == dns.rcode.BADVERS
        assert r.edns == 0


async def test_edns_is_mirrored_and_absent_when_not_asked():
    async with running(". {\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org", "A", use_edns=0, payload=4000, want_dnssec=True)
        assert r.edns == 0 and r.payload == 4000 and r.ednsflags & dns.flags.DO
        r = await query(srv.port(), "example.org", "A", use_edns=False)
        assert r.edns == -1


async def test_udp_truncation_sets_tc_and_tcp_gets_everything():
    # chaos authors: many TXT records make a reply larger than 512 bytes
    authors = " ".join(f"author-number-{i:03d}-with-a-long-name" for i in range(40))
    async with running(f". {{\n chaos v {authors}\n}}\n") as srv:
        r = await query(srv.port(), "authors.bind", "TXT", rdclass="CH", use_edns=False)
        assert r.flags & dns.flags.TC
        assert len(r.to_wire()) <= 512
        assert len(r.answer[0]) < 40 if r.answer else True
        r = await query(srv.port(), "authors.bind", "TXT", rdclass="CH", tcp=True)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 40
        r = await query(srv.port(), "authors.bind", "TXT", rdclass="CH", use_edns=0, payload=4096)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 40


async def test_tcp_pipelining_answers_every_query_on_one_connection():
    async with running(". {\n whoami\n}\n") as srv:
        stream = await trio.open_tcp_stream("127.0.0.1", srv.port())
        async with stream:
            ids = list(range(100, 120))
            payload = b""
            for i in ids:
                q = dns.message.make_query(f"n{i}.example.org.", "A")
                q.id = i
                w = q.to_wire()
                payload += struct.pack(">H", len(w)) + w
            await stream.send_all(payload)
            buf = b""
            got = []
            with trio.fail_after(5):
                while len(got) < len(ids):
                    buf += await stream.receive_some(65536)
                    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                        n = struct.unpack(">H", buf[:2])[0]
                        got.append(dns.message.from_wire(buf[2 : 2 + n]))
                        buf = buf[2 + n :]
            assert sorted(m.id for m in got) == ids
            for m in got:
                assert m.question[0].name.to_text() == f"n{m.id}.example.org."


async def test_tcp_idle_connection_is_closed_after_read_timeout(monkeypatch):
    from pycoredns import server

    monkeypatch.setattr(server, "READ_TIMEOUT", 0.3)
    async with running(". {\n whoami\n}\n") as srv:
        stream = await trio.open_tcp_stream("127.0.0.1", srv.port())
        async with stream:
            with trio.fail_after(3):
                assert await stream.receive_some(10) == b""  # server closed the silent connection


async def test_tcp_connection_idle_after_its_queries_is_closed(monkeypatch):
    """After the queries the deadline is the idle timeout, checked by the connection's one timer (armed
    with the read timeout at the first wait, re-armed for the later deadline); a partial frame after
    the queries is closed the same way. The queries go in one write: no race with the deadlines."""
    from pycoredns import server

    monkeypatch.setattr(server, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.5)
    async with running(". {\n whoami\n}\n") as srv:
        for tail in (b"", b"\x00"):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port())
            async with stream:
                payload = b""
                for i in range(3):
                    w = dns.message.make_query(f"n{i}.example.org.", "A").to_wire()
                    payload += struct.pack(">H", len(w)) + w
                await stream.send_all(payload + tail)
                buf, got = b"", 0
                with trio.fail_after(5):
                    while got < 3:
                        chunk = await stream.receive_some(65536)
                        assert chunk, "closed before the replies"
                        buf += chunk
                        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                            n = struct.unpack(">H", buf[:2])[0]
                            assert dns.message.from_wire(buf[2 : 2 + n]).rcode() == 0
                            buf, got = buf[2 + n :], got + 1
                    assert await stream.receive_some(10) == b""  # closed once idle


async def test_tcp_connection_cap_keeps_extra_clients_waiting(monkeypatch):
    from pycoredns import server

    monkeypatch.setattr(server, "MAX_TCP_CONNECTIONS", 2)
    async with running(". {\n whoami\n}\n") as srv:
        idle = [await trio.open_tcp_stream("127.0.0.1", srv.port()) for _ in range(2)]
        # a third client is not served while two idle connections hold every slot...
        with pytest.raises(dns.exception.Timeout):
            await query(srv.port(), "example.org", "A", tcp=True, timeout=0.5)
        for s in idle:
            await s.aclose()
        # ...and is served once they are gone; UDP was never affected
        r = await query(srv.port(), "example.org", "A", tcp=True)
        assert r.rcode() == 0


async def test_in_process_resolve_without_sockets():
    async with running(". {\n chaos CoreDNS-x\n whoami\n}\n") as srv:
        reply = await srv.resolve("example.org.", "A")
        assert reply.header.rcode == 0 and reply.header.aa
        reply = await srv.resolve("version.bind.", "TXT", qclass=3)
        assert str(reply.rr[0].rdata) == '"CoreDNS-x"'


async def test_duplicate_zone_is_a_startup_error():
    from pycoredns.instance import StartupError

    with pytest.raises(StartupError, match=r"cannot serve dns://example.org.:\d+ - it is already defined"):
        async with running("example.org {\n whoami\n}\nexample.org {\n whoami\n}\n"):
            pass


async def test_plugin_error_is_prefixed():
    from pycoredns.instance import StartupError

    with pytest.raises(StartupError) as e:
        async with running(". {\n whoami extra\n}\n"):
            pass
    assert str(e.value) == ("plugin/whoami: Corefile:2 - Error during parsing: "
                            "Wrong argument count or unexpected line ending after 'extra'")


async def test_unimplemented_known_directive():
    from pycoredns.instance import StartupError

    with pytest.raises(StartupError, match=r"no action found for directive 'dnssec' with server type 'dns'"):
        async with running(". {\n dnssec\n}\n"):
            pass


async def test_many_concurrent_udp_queries_all_answered():
    async with running(". {\n whoami\n}\n") as srv:
        results: list[int] = []

        async def one(i: int) -> None:
            r = await query(srv.port(), f"q{i}.example.org", "A")
            results.append(r.rcode())

        async with trio.open_nursery() as n:
            for i in range(200):
                n.start_soon(one, i)
        assert results == [0] * 200



def test_an_ephemeral_port_is_shared_with_no_other_socket() -> None:
    """`:0` gets a port no other socket holds. With SO_REUSEPORT and SO_REUSEADDR set before it, a
    UDP bind to port 0 may be given a port that another such socket of the same user holds (another
    server, another test run): the two then split its datagrams, and a query is answered by the
    other server (a NOERROR for a name the upstream says NXDOMAIN to, in a full-suite run)."""
    import resource

    from pycoredns.process import SocketPool

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2000:
        pytest.skip("needs 2,000 file descriptors")
    others: list[socket.socket] = []
    pools = [SocketPool() for _ in range(100)]  # 100 servers on `:0`
    try:
        for _ in range(1500):  # what other servers hold, bound as a configured port is
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            others.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
        held = {s.getsockname()[1] for s in others}
        ports = {pool.take("dns", "127.0.0.1", 0)[1].getsockname()[1] for pool in pools}
        assert len(ports) == 100 and not held & ports  # before: about 5 of the 100 on a held port
    finally:
        for pool in pools:
            pool.close()
        for s in others:
            s.close()
