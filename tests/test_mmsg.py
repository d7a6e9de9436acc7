"""Batched UDP sends (pycoredns.mmsg): the batch itself over real sockets, and bursts of queries through
a running server whose listener and forward sockets send in batches (unbound upstream on loopback)."""

from __future__ import annotations

import errno
import os
import socket
import sys

import dns.flags
import dns.message
import dns.rdatatype
import pytest
import trio

sys.path.insert(0, os.path.dirname(__file__))

from conftest import running
from upstream import DeadPort, Unbound

from pycoredns import mmsg

pytestmark = pytest.mark.skipif(not mmsg.AVAILABLE, reason="sendmmsg is Linux-only")

ANSWERS = {"a": "192.0.2.1", "short": "192.0.2.5", "long": "192.0.2.86"}


def _udp(family: int, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(5)
    return s


# -- the batch on its own ----------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_named_batch_reaches_each_address(family, host):
    """add_to: one sendmmsg, each datagram to its own receiver, from the sending socket's address."""
    sender = _udp(family, host)
    receivers = [_udp(family, host) for _ in range(3)]
    try:
        batch = mmsg.SendBatch(sender, named=True)
        for i, r in enumerate(receivers * 2):
            batch.add_to(b"datagram %d" % i, mmsg.sockaddr(r.getsockname()))
        assert batch.count == 6
        batch.flush()
        assert batch.count == 0 and batch.largest == 6
        for i, r in enumerate(receivers):
            for j in (i, i + 3):
                data, src = r.recvfrom(100)
                assert data == b"datagram %d" % j
                assert src[:2] == sender.getsockname()[:2]
    finally:
        for s in (sender, *receivers):
            s.close()


def test_sockaddr_of_a_mapped_client_on_a_dual_stack_socket():
    """The 4-tuple a dual-stack socket reports for an IPv4 client (::ffff:127.0.0.1) encodes and is reachable."""
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", 0))
    server.settimeout(5)
    client = _udp(socket.AF_INET, "127.0.0.1")
    try:
        client.sendto(b"q", ("127.0.0.1", server.getsockname()[1]))
        _data, addr = server.recvfrom(100)
        assert addr[0] == "::ffff:127.0.0.1" and len(addr) == 4
        batch = mmsg.SendBatch(server, named=True)
        batch.add_to(b"reply", mmsg.sockaddr(addr))
        batch.flush()
        assert client.recvfrom(100) == (b"reply", ("127.0.0.1", server.getsockname()[1]))
    finally:
        server.close()
        client.close()


def test_refused_datagram_is_reported_and_the_rest_still_go_out():
    """A datagram the kernel refuses (over the UDP maximum: EMSGSIZE) goes to on_fail with its tag;
    the datagrams after it are sent by the next sendmmsg of the same flush."""
    receiver = _udp(socket.AF_INET, "127.0.0.1")
    sender = _udp(socket.AF_INET, "127.0.0.1")
    sender.connect(receiver.getsockname())
    failed: list[tuple[object, int]] = []
    try:
        batch = mmsg.SendBatch(sender, lambda tag, err: failed.append((tag, err)))
        batch.add(b"first", "t1")
        batch.add(b"x" * 65508, "too big")
        batch.add(b"third", "t3")
        batch.flush()
        assert failed == [("too big", errno.EMSGSIZE)]
        assert receiver.recv(100) == b"first"
        assert receiver.recv(100) == b"third"
    finally:
        receiver.close()
        sender.close()


def test_flush_of_one_datagram():
    """A flush of one datagram goes out with send/sendto (no ctypes call): to the connected peer, to a
    named address, to a named address whose memo was cleared meanwhile (then by sendmmsg); a refused
    one reaches on_fail with its errno as in a batch."""
    receiver = _udp(socket.AF_INET, "127.0.0.1")
    sender = _udp(socket.AF_INET, "127.0.0.1")
    named = _udp(socket.AF_INET, "127.0.0.1")
    sender.connect(receiver.getsockname())
    failed: list[tuple[object, int]] = []
    try:
        batch = mmsg.SendBatch(sender, lambda tag, err: failed.append((tag, err)))
        batch.add(b"one", "t1")
        batch.flush()
        assert receiver.recv(100) == b"one" and batch.largest == 1
        batch.add(b"x" * 65508, "too big")
        batch.flush()
        assert failed == [("too big", errno.EMSGSIZE)] and batch.count == 0
        to = mmsg.SendBatch(named, named=True)
        to.add_to(b"to you", mmsg.sockaddr(receiver.getsockname()))
        to.flush()
        assert receiver.recvfrom(100) == (b"to you", named.getsockname())
        name = mmsg.sockaddr(receiver.getsockname())
        mmsg.SOCKADDRS.clear()
        mmsg._ADDRS.clear()
        to.add_to(b"unmemoised", name)
        to.flush()
        assert receiver.recvfrom(100) == (b"unmemoised", named.getsockname())
        mmsg.DEFER.flush()
    finally:
        for s in (receiver, sender, named):
            s.close()


def _connected_pair() -> tuple[socket.socket, socket.socket]:
    receiver = _udp(socket.AF_INET, "127.0.0.1")
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sender = _udp(socket.AF_INET, "127.0.0.1")
    sender.connect(receiver.getsockname())
    return receiver, sender


# sizes of a queue: runs of equal datagrams (GSO), single ones between them, a run above GSO_MAX
SIZES = [10, 10, 10, 7, 12, 12, 12, 12, 9, mmsg.GSO_MAX + 1, mmsg.GSO_MAX + 1, 5]


def _queue(batch: mmsg.SendBatch) -> list[bytes]:
    sent = [bytes([65 + i]) * n for i, n in enumerate(SIZES)]  # each datagram its own content
    for i, d in enumerate(sent):
        batch.add(d, i)
    return sent


def test_runs_of_equal_datagrams_go_out_as_the_same_datagrams():
    """A connected batch sends runs of equal-size datagrams with UDP GSO: the receiver still gets each
    datagram on its own, in order, with its own content."""
    receiver, sender = _connected_pair()
    try:
        batch = mmsg.SendBatch(sender)
        assert batch.gso and not mmsg.SendBatch(sender, named=True).gso
        sent = _queue(batch)
        assert batch._runs(len(sent)) == [(0, 3, 10), (4, 8, 12)]
        batch.flush()
        assert [receiver.recv(2048) for _ in sent] == sent
        assert batch.gso  # the kernel took UDP_SEGMENT (Linux >= 4.18)
        big = [bytes([i]) * (mmsg.GSO_MAX + 1) for i in range(3)]  # one size, above GSO_MAX: sendmmsg
        for d in big:
            batch.add(d)
        assert batch._runs(3) == []
        batch.flush()
        assert [receiver.recv(2048) for _ in big] == big
    finally:
        receiver.close()
        sender.close()


def test_a_refused_run_reports_its_first_datagram_as_sendmmsg_does():
    """The upstream port is closed: the pending ICMP error fails the first datagram of the run, as a
    sendmmsg would; the rest go out."""
    receiver, sender = _connected_pair()
    receiver.close()  # nobody listens there now
    failed: list[tuple[object, int]] = []
    try:
        sender.send(b"probe")  # port unreachable: the error is pending on the socket
        batch = mmsg.SendBatch(sender, lambda tag, err: failed.append((tag, err)))
        for i in range(4):
            batch.add(b"same size", i)
        batch.flush()
        assert failed == [(0, errno.ECONNREFUSED)]
    finally:
        sender.close()


def test_without_gso_the_batch_falls_back_to_sendmmsg():
    """A socket the kernel refuses GSO for (no UDP checksums: EINVAL) sends by sendmmsg and stops trying."""
    receiver, sender = _connected_pair()
    try:
        sender.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK
        failed: list[tuple[object, int]] = []
        batch = mmsg.SendBatch(sender, lambda tag, err: failed.append((tag, err)))
        sent = _queue(batch)
        batch.flush()
        assert not batch.gso and not failed
        assert [receiver.recv(2048) for _ in sent] == sent
        sent = _queue(batch)
        batch.flush()
        assert [receiver.recv(2048) for _ in sent] == sent
    finally:
        receiver.close()
        sender.close()


def test_full_batch_flushes_and_a_closed_socket_sends_nothing():
    receiver = _udp(socket.AF_INET, "127.0.0.1")
    sender = _udp(socket.AF_INET, "127.0.0.1")
    sender.connect(receiver.getsockname())
    try:
        batch = mmsg.SendBatch(sender)
        for i in range(mmsg.BATCH + 1):  # the 65th add sends the first 64
            batch.add(b"%d" % i)
        assert batch.count == 1 and batch.largest == mmsg.BATCH
        assert [receiver.recv(100) for _ in range(mmsg.BATCH)] == [b"%d" % i for i in range(mmsg.BATCH)]
        sender.close()
        batch.flush()  # the descriptor is gone: nothing is sent, nothing raises
        assert batch.count == 0
        mmsg.DEFER.flush()
        assert not mmsg.DEFER.active and not mmsg.DEFER.dirty
    finally:
        receiver.close()
        sender.close()


# -- bursts through a running server ------------------------------------------------------------------


async def burst(port: int, host: str, family: int, questions: list[tuple[str, str, int | None]],
                sockets: int = 8) -> list[tuple[dns.message.Message, dns.message.Message]]:
    """Send every question at once from `sockets` client sockets; (query, reply) pairs, matched by
    client socket and ID. Bounded: 20 s for all replies."""
    socks = [trio.socket.socket(family, socket.SOCK_DGRAM) for _ in range(sockets)]
    sent: list[dict[int, dns.message.Message]] = [{} for _ in socks]
    pairs: list[tuple[dns.message.Message, dns.message.Message]] = []
    try:
        for s in socks:
            await s.bind((host, 0))
        for i, (name, rdtype, payload) in enumerate(questions):
            edns = {"use_edns": 0, "payload": payload} if payload else {"use_edns": False}
            q = dns.message.make_query(name, rdtype, **edns)
            q.id = i // sockets
            sent[i % sockets][q.id] = q
            await socks[i % sockets].sendto(q.to_wire(), (host, port))

        async def collect(k: int) -> None:
            while sent[k]:
                data = await socks[k].recv(65535)
                r = dns.message.from_wire(data)
                q = sent[k].pop(r.id)
                pairs.append((q, r))

        with trio.move_on_after(20):
            async with trio.open_nursery() as n:
                for k in range(sockets):
                    n.start_soon(collect, k)
    finally:
        for s in socks:
            s.close()
    return pairs


def forward_of(srv):
    (f,) = [h for b in srv.instance.blocks for h in b.handlers if h.name == "forward"]
    return f


def check_answers(pairs, want: int) -> None:
    assert len(pairs) == want
    for q, r in pairs:
        assert r.question == q.question
        label = q.question[0].name.labels[0].decode()
        assert r.answer[0][0].address == ANSWERS[label]


@pytest.mark.parametrize("ipv6", [False, True])
async def test_thousand_concurrent_queries_batched(ipv6):
    """1,000 queries at once from 8 sockets: each answered once with its own ID and question; the
    listener's replies and forward's upstream queries went out in batches of more than one."""
    host, family = ("::1", socket.AF_INET6) if ipv6 else ("127.0.0.1", socket.AF_INET)
    async with Unbound(ipv6=ipv6) as ub:
        to = f"[::1]:{ub.port}" if ipv6 else ub.addr
        async with running(f". {{\n bind {host}\n errors\n forward . {to}\n}}\n") as srv:
            names = list(ANSWERS)
            questions = [(f"{names[i % len(names)]}.example.org", "A", None) for i in range(1000)]
            pairs = await burst(srv.port(), host, family, questions)
            check_answers(pairs, 1000)
            udp = forward_of(srv).proxies[0].udp
            assert not udp.pending
            assert udp.batch is not None and udp.batch.largest > 1
            lst = srv.instance.first_listener()
            assert lst.udp_batch is not None and lst.udp_batch.largest > 1
            assert lst.inflight == 0


async def test_dual_stack_listener_answers_both_families_in_one_burst():
    """A wildcard (dual-stack) listener: IPv4 clients appear as ::ffff: addresses; replies reach both."""
    async with Unbound() as ub, running(f". {{\n errors\n forward . {ub.addr}\n}}\n") as srv:
        questions = [("a.example.org", "A", None)] * 200
        async with trio.open_nursery() as n:
            results: dict[str, list] = {}

            async def one(host: str, family: int) -> None:
                results[host] = await burst(srv.port(), host, family, questions, sockets=4)

            n.start_soon(one, "127.0.0.1", socket.AF_INET)
            n.start_soon(one, "::1", socket.AF_INET6)
        check_answers(results["127.0.0.1"], 200)
        check_answers(results["::1"], 200)


async def test_truncation_per_client_inside_a_batch():
    """One burst mixing buffer sizes: each reply is truncated to its own client's size (TC, no
    records), never to its neighbour's in the batch."""
    async with Unbound() as ub, running(f". {{\n bind 127.0.0.1\n errors\n forward . {ub.addr}\n}}\n") as srv:
        questions = [("medium.example.org", "TXT", None), ("medium.example.org", "TXT", 1232),
                     ("a.example.org", "A", None), ("big.example.org", "TXT", 1232)] * 100
        pairs = await burst(srv.port(), "127.0.0.1", socket.AF_INET, questions)
        assert len(pairs) == 400
        for q, r in pairs:
            assert r.question == q.question
            name = q.question[0].name.labels[0].decode()
            if name == "a":
                assert r.answer[0][0].address == "192.0.2.1" and not r.flags & dns.flags.TC
            elif name == "medium" and q.edns < 0:
                assert r.flags & dns.flags.TC and not r.answer  # ~800 bytes do not fit 512
                assert r.edns < 0
            elif name == "medium":
                assert not r.flags & dns.flags.TC and r.answer[0].rdtype == dns.rdatatype.TXT
                assert r.edns == 0 and r.payload >= 512
            else:
                assert r.flags & dns.flags.TC and not r.answer  # ~2000 bytes do not fit 1232
                assert r.edns == 0


async def test_refused_batched_upstream_queries_go_to_the_next_upstream():
    """policy sequential with a dead port first: the refusals (ICMP, seen by the batch's sendmmsg or
    the reader) send each query on to the live upstream; every client gets its answer."""
    async with Unbound() as ub, running(
            f". {{\n bind 127.0.0.1\n errors\n forward . {DeadPort().addr} {ub.addr} {{\n"
            "  policy sequential\n  max_fails 0\n }\n}\n") as srv:
        questions = [("a.example.org", "A", None)] * 300
        pairs = await burst(srv.port(), "127.0.0.1", socket.AF_INET, questions)
        check_answers(pairs, 300)
        assert forward_of(srv).pending() == 0


@pytest.mark.parametrize("ipv6", [False, True])
async def test_thousand_concurrent_queries_over_pipelined_tcp(ipv6):
    """force_tcp: the frames of one drain iteration go to the upstream connection in one send; 1,000
    queries at once are each answered with their own ID and question, nothing stays pending."""
    host, family = ("::1", socket.AF_INET6) if ipv6 else ("127.0.0.1", socket.AF_INET)
    async with Unbound(ipv6=ipv6) as ub:
        to = f"[::1]:{ub.port}" if ipv6 else ub.addr
        async with running(f". {{\n bind {host}\n errors\n forward . {to} {{\n  force_tcp\n }}\n}}\n") as srv:
            names = list(ANSWERS)
            questions = [(f"{names[i % len(names)]}.example.org", "A", None) for i in range(1000)]
            pairs = await burst(srv.port(), host, family, questions)
            check_answers(pairs, 1000)
            f = forward_of(srv)
            assert f.pending() == 0
            assert all(c.deferred is None and not c.batched for c in f.proxies[0].conns["tcp"])


async def test_pipelined_tcp_client_beside_batched_upstream_sends():
    """A TCP client pipelining 1,000 queries, forwarded over UDP: the upstream queries and replies are
    batched by the drain loops, the client's replies are written to its connection; every one arrives,
    framed, with its own ID and question."""
    async with Unbound() as ub, running(f". {{\n bind 127.0.0.1\n errors\n forward . {ub.addr}\n}}\n") as srv:
        names = list(ANSWERS)
        queries = {}
        for i in range(1000):
            q = dns.message.make_query(f"{names[i % len(names)]}.example.org", "A")
            q.id = i
            queries[i] = q
        stream = await trio.open_tcp_stream("127.0.0.1", srv.port("tcp"))
        pairs = []
        async with stream:
            await stream.send_all(b"".join(len(w).to_bytes(2, "big") + w
                                           for w in (q.to_wire() for q in queries.values())))
            buf = bytearray()
            with trio.move_on_after(20):
                while queries:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                        size = int.from_bytes(buf[:2], "big")
                        r = dns.message.from_wire(bytes(buf[2 : 2 + size]))
                        del buf[: 2 + size]
                        pairs.append((queries.pop(r.id), r))
        check_answers(pairs, 1000)
        assert not buf
