"""A UDP flood of random names: every query answered, the cache stays within its capacity, memory flat.

The server runs in this process, so its resident set is this process's: it is read after a first
flood (caches and memo tables full) and again after a second flood of as many new names.
"""

from __future__ import annotations

import os
import random
import socket

import dns.message
import trio
from conftest import free_port, running

from .helpers import metric

CAPACITY = 1024
FLOOD = 10_000  # names per round (bounded)


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def flood(port: int, n: int, rng: random.Random) -> int:
    """Send `n` queries for random names in windows of 100 and count the answers received."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    answered = 0
    with sock:
        for start in range(0, n, 100):
            window = min(100, n - start)
            for i in range(window):
                name = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12)) + ".flood.example."
                q = dns.message.make_query(name, "A")
                q.id = (start + i) & 0xFFFF
                await sock.sendto(q.to_wire(), ("127.0.0.1", port))
            with trio.move_on_after(5):
                for _ in range(window):
                    await sock.recv(4096)
                    answered += 1
    return answered


async def test_random_name_flood_keeps_the_cache_bounded_and_memory_flat() -> None:
    mport = free_port()
    corefile = (f". {{\n prometheus 127.0.0.1:{mport}\n cache 60 {{\n  success {CAPACITY}\n  denial {CAPACITY}\n }}\n"
                ' template IN A flood.example {\n  answer "{{ .Name }} 60 IN A 192.0.2.1"\n }\n}\n')
    rng = random.Random(15)
    async with running(corefile) as srv:
        assert await flood(srv.port(), FLOOD, rng) == FLOOD
        before = rss_bytes()
        assert await flood(srv.port(), FLOOD, rng) == FLOOD
        after = rss_bytes()
        entries = await metric(mport, "coredns_cache_entries", 'type="success"')
        assert 0 < entries <= CAPACITY
        assert await metric(mport, "coredns_cache_evictions_total") > 0
        assert after - before < 16 * 1024 * 1024, (before, after)
