"""Malformed packets never crash the server or make it panic; it keeps answering real queries."""

from __future__ import annotations

import random
import socket
import struct

import dns.message
import trio
from conftest import query, running

from pycoredns import metrics

COREFILE = ". {\n errors\n log\n any\n chaos\n minimal\n whoami\n}\n"


def mutations(rng: random.Random, n: int) -> list[bytes]:
    base = [
        dns.message.make_query("www.example.org.", "A").to_wire(),
        dns.message.make_query("example.org.", "TXT", use_edns=0, payload=4096, want_dnssec=True).to_wire(),
        dns.message.make_query("version.bind.", "TXT", "CH").to_wire(),
        dns.message.make_query(".", "ANY").to_wire(),
    ]
    out = []
    for i in range(n):
        b = bytearray(rng.choice(base))
        kind = i % 5
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            b = b[: rng.randrange(len(b))]
        elif kind == 2:  # random bytes
            b = bytearray(rng.randbytes(rng.randint(0, 300)))
        elif kind == 3:  # bogus counts on a valid header
            struct.pack_into(">HHHH", b, 4, *(rng.randint(0, 3) for _ in range(4)))
        else:  # trailing garbage / bogus OPT
            b += rng.randbytes(rng.randint(1, 40))
        out.append(bytes(b))
    return out


async def test_udp_garbage_does_not_panic():
    rng = random.Random(1234)
    panics = metrics.panics_total.get()
    async with running(COREFILE) as srv:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            for pkt in mutations(rng, 2000):
                await sock.sendto(pkt, ("127.0.0.1", srv.port()))
            # drain whatever came back, bounded
            with trio.move_on_after(1):
                while True:
                    await sock.recvfrom(65535)
        r = await query(srv.port(), "example.org", "A")
        assert r.rcode() == 0
    assert metrics.panics_total.get() == panics


async def test_tcp_garbage_does_not_panic():
    rng = random.Random(99)
    panics = metrics.panics_total.get()
    async with running(COREFILE) as srv:
        for chunk in range(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port())
            async with stream:
                pkts = mutations(rng, 25)
                payload = b"".join(struct.pack(">H", len(p)) + p for p in pkts)
                if chunk % 4 == 0:
                    payload += b"\xff\xff" + rng.randbytes(10)  # a frame that never completes
                try:
                    await stream.send_all(payload)
                except trio.BrokenResourceError:
                    pass
        r = await query(srv.port(), "example.org", "A", tcp=True)
        assert r.rcode() == 0
    assert metrics.panics_total.get() == panics
