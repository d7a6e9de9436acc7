"""An upstream that never answers (issue 11): 100,000 queries time out, each client gets SERVFAIL, and
afterwards the server's pending tables are empty and its memory is back where it started.

The upstream is a loopback UDP socket nobody reads. The client is a raw UDP socket sending queries in
batches (a lost datagram is sent again) and reading the rcode off the wire; a sample of the replies is
checked with dnspython. Memory is compared in allocated blocks and GC-tracked objects after a warm-up
over the same 1,000 names (so the server's bounded memo tables are as full before as after): a leak of
one object per query would show as 100,000. Every wait is bounded; nothing is timed.
"""

from __future__ import annotations

import gc
import socket
import struct
import sys
from collections.abc import Callable

import dns.message
import dns.rcode
import pytest
import trio
from conftest import running, settle

from pycoredns import timers, wire

TOTAL = 100_000
WARMUP = 10_000
BATCH = 4_000  # in flight at once: below what the server's 4 MB receive buffer holds
NAMES = 1_000  # distinct names, cycled


def query(i: int) -> bytes:
    return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + wire.text_to_wire(
        f"q{i % NAMES}.example.org.") + b"\x00\x01\x00\x01"


async def batch(sock: socket.socket, first: int, count: int) -> dict[int, int]:
    """Send queries first..first+count-1 and return {query index: rcode}; what gets no reply within
    a second of silence is sent again (at most 10 rounds)."""
    want = {i & 0xFFFF: i for i in range(first, first + count)}
    rcodes: dict[int, int] = {}
    for _round in range(10):
        for i in want.values():
            if i not in rcodes:
                for _ in range(100):  # a full send buffer: let the server drain it
                    try:
                        sock.send(query(i))
                        break
                    except BlockingIOError:
                        await trio.sleep(0.001)
        while len(rcodes) < count:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                with trio.move_on_after(1.0) as quiet:
                    await trio.lowlevel.wait_readable(sock)
                if quiet.cancelled_caught:
                    break  # a second without a reply: send the missing ones again
                continue
            i = want.get(data[0] << 8 | data[1])
            if i is None:
                continue
            rcodes[i] = data[3] & 0xF
            if i % 997 == 0:  # an independent parse of a sample: the reply is to this query
                m = dns.message.from_wire(data)
                assert m.question[0].name.to_text() == f"q{i % NAMES}.example.org.", m
        if len(rcodes) == count:
            break
    return rcodes


def forward_of(srv) -> object:
    (fwd,) = [h for b in srv.instance.blocks for h in b.handlers if h.name == "forward"]
    return fwd


def idle(srv, fwd) -> Callable[[], bool]:
    return lambda: (fwd.pending() == 0 and fwd.concurrent == 0 and timers.pending_count() < 10
                    and all(lst.inflight == 0 for lst in srv.instance.listeners.values()))


def holes() -> tuple[socket.socket, socket.socket]:
    """A UDP socket nobody reads and a TCP listener nobody accepts from, on one loopback port."""
    for _ in range(20):  # the TCP side of a free UDP port may be taken: try another
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hole.bind(("127.0.0.1", 0))
        tcp_hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp_hole.bind(hole.getsockname())
        except OSError:
            hole.close()
            tcp_hole.close()
            continue
        tcp_hole.listen(64)  # the kernel completes connections into the backlog; nothing reads them
        return hole, tcp_hole
    raise RuntimeError("no free port")


def footprint() -> tuple[int, int]:
    """(allocated memory blocks, GC-tracked objects) after a full collection."""
    gc.collect()
    return sys.getallocatedblocks(), len(gc.get_objects())


@pytest.mark.parametrize("option", ["", "force_tcp"])
async def test_a_hundred_thousand_timeouts_leave_nothing_behind(option: str) -> None:
    hole, tcp_hole = holes()
    addr = f"127.0.0.1:{hole.getsockname()[1]}"
    opts = f"  max_fails 0\n  read_timeout 100ms\n  max_connect_attempts 1\n  {option}"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client.setblocking(False)
    with hole, tcp_hole, client:
        async with running(f". {{\n forward . {addr} {{\n{opts}\n }}\n}}\n") as srv:
            client.connect(("127.0.0.1", srv.port()))
            fwd = forward_of(srv)
            for first in range(0, WARMUP, BATCH):
                await batch(client, first, min(BATCH, WARMUP - first))
            assert await settle(idle(srv, fwd))
            blocks0, objects0 = footprint()
            servfail = 0
            with trio.move_on_after(300):
                for first in range(WARMUP, WARMUP + TOTAL, BATCH):
                    got = await batch(client, first, BATCH)
                    assert len(got) == BATCH, f"{BATCH - len(got)} queries of batch {first} without a reply"
                    servfail += sum(rc == dns.rcode.SERVFAIL for rc in got.values())
            assert servfail == TOTAL  # every timeout fired and the client heard of it
            # the tables are empty: upstream IDs, forward's count, the listeners' holds, the timers
            assert await settle(idle(srv, fwd))
            blocks, objects = footprint()
            assert blocks - blocks0 < 20_000, (blocks0, blocks)  # measured: ~4,000 (free lists, memos)
            assert objects - objects0 < 2_000, (objects0, objects)
