"""TCP clients that misbehave: silent, half a length prefix, 1,000 pipelined queries, slow readers.

Each misbehaving client runs next to ordinary UDP and TCP clients, which keep getting answers; a
silent or stalled connection is closed by the server (read timeout), never kept forever.
"""

from __future__ import annotations

import struct

import dns.message
import dns.rcode
import trio
from conftest import query, running

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
