"""TCP clients that misbehave: silent, half a length prefix, 1,000 pipelined queries, slow readers;
DoT clients that never finish their TLS handshake or speak plain DNS to a `tls://` listener.

Each misbehaving client runs next to ordinary UDP and TCP clients, which keep getting answers; a
silent or stalled connection is closed by the server (read timeout), never kept forever.
"""

from __future__ import annotations

import ssl
import struct

import dns.asyncquery
import dns.message
import dns.rcode
import trio
from conftest import query, running
from pycoredns_conformance.upstream import make_tls_cert

COREFILE = ". {\n whoami\n}\n"
BIG = ". {\n template IN TXT big.example {\n  answer \"{{ .Name }} 60 IN TXT " + " ".join(
    [f'\\"{"x" * 200}\\"'] * 10) + "\"\n }\n whoami\n}\n"


async def others_are_served(port: int) -> None:
    for tcp in (False, True):
        r = await query(port, "example.org", "A", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR and r.additional


async def closed_by_server(stream: trio.SocketStream, limit: float = 20.0) -> bool:
    """True once the server closed the connection (EOF or reset), bounded by `limit` seconds."""
    with trio.move_on_after(limit):
        while True:
            try:
                if not await stream.receive_some(65536):
                    return True
            except trio.BrokenResourceError:
                return True
    return False


def framed(name: str, qid: int, rdtype: str = "A") -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    wire = q.to_wire()
    return struct.pack(">H", len(wire)) + wire


async def test_silent_client_is_closed_and_others_served() -> None:
    async with running(COREFILE) as srv:
        port = srv.port("tcp")
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await others_are_served(port)
            assert await closed_by_server(stream)
        await others_are_served(port)


async def test_half_a_length_prefix_is_closed_and_others_served() -> None:
    async with running(COREFILE) as srv:
        port = srv.port("tcp")
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"\x00")  # one byte of the two-byte length
            await others_are_served(port)
            assert await closed_by_server(stream)
        half = await trio.open_tcp_stream("127.0.0.1", port)
        async with half:
            msg = framed("example.org", 7)
            await half.send_all(msg[: len(msg) // 2])  # half a message: never completed
            await others_are_served(port)
            assert await closed_by_server(half)


async def test_a_thousand_pipelined_queries_all_answered() -> None:
    async with running(COREFILE) as srv:
        port = srv.port("tcp")
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"".join(framed(f"q{i}.example.org", i) for i in range(1000)))
            buf = bytearray()
            ids: set[int] = set()
            with trio.fail_after(30):
                while len(ids) < 1000:
                    chunk = await stream.receive_some(65536)
                    assert chunk, f"closed after {len(ids)} answers"
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + (n := struct.unpack(">H", buf[:2])[0]):
                        r = dns.message.from_wire(bytes(buf[2 : 2 + n]))
                        del buf[: 2 + n]
                        assert r.rcode() == dns.rcode.NOERROR
                        assert r.question[0].name.to_text() == f"q{r.id}.example.org."
                        ids.add(r.id)
            assert ids == set(range(1000))
        await others_are_served(port)


async def test_slow_reader_gets_every_answer_and_does_not_stall_others() -> None:
    """50 large TCP answers (~2 KB each) read 512 bytes at a time with pauses."""
    async with running(BIG) as srv:
        port = srv.port("tcp")
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"".join(framed("big.example", i, "TXT") for i in range(50)))
            await others_are_served(port)
            buf = bytearray()
            got: set[int] = set()
            for _ in range(2000):  # bounded: 50 answers of ~2 KB in 512-byte reads
                if len(got) == 50:
                    break
                chunk = await stream.receive_some(512)
                assert chunk
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + (n := struct.unpack(">H", buf[:2])[0]):
                    r = dns.message.from_wire(bytes(buf[2 : 2 + n]))
                    del buf[: 2 + n]
                    assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0][0].strings) == 10
                    got.add(r.id)
                await trio.sleep(0.005)
                if len(got) == 25:
                    await others_are_served(port)
            assert got == set(range(50))


def half_a_client_hello(ctx: ssl.SSLContext) -> bytes:
    """The first half of the ClientHello a TLS client with `ctx` sends."""
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    return hello[: len(hello) // 2]


async def test_dot_clients_without_a_tls_handshake_are_closed_and_others_served(tmp_path, logs) -> None:
    """On a `tls://` listener: a client that connects and sends nothing, one that sends half a
    ClientHello, one that sends a plain DNS query. Each is closed (the read timeout bounds the
    handshake); a DoT client connecting meanwhile and afterwards is answered; no error is logged."""
    cert, key = make_tls_cert(str(tmp_path))
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the certificate names 127.0.0.1 as an IP address SAN
    async with running(f"tls://.:0 {{\n tls {cert} {key}\n whoami\n}}\n") as srv:
        lst = next(iter(srv.instance.listeners.values()))
        port = lst.bound_port
        q = dns.message.make_query("example.org", "A")
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        half = await trio.open_tcp_stream("127.0.0.1", port)
        plain = await trio.open_tcp_stream("127.0.0.1", port)
        async with silent, half, plain:
            await half.send_all(half_a_client_hello(ctx))
            await plain.send_all(framed("example.org", 1))
            r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=ctx)
            assert r.rcode() == dns.rcode.NOERROR and r.additional
            for stream in (silent, half, plain):
                assert await closed_by_server(stream)
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=ctx)
        assert r.rcode() == dns.rcode.NOERROR and r.additional
        with trio.move_on_after(10):  # the connections' tasks end (bounded)
            while lst.tcp_conns:
                await trio.sleep(0.02)
        assert not lst.tcp_conns
    assert not [line for line in logs.lines if line.startswith(("[ERROR]", "[WARNING]"))], logs.lines
