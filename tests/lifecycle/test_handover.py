"""pycoredns.handover on loopback: a wildcard UDP socket withdrawn from its reuseport group, and a
TCP listener that new connections are steered away from (without BPF privileges).

Two addresses of 127.0.0.0/8 (and ::1 for a dual-stack socket, which the server uses for a
wildcard address) stand for the addresses a wildcard socket serves. Datagrams queued on
the old socket before the hand-over must stay readable after it, new ones must go to the successor,
and the old socket's replies must leave from the address each query was sent to (a client whose
socket is connected to that address receives nothing else).
"""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import pytest

from pycoredns import handover, reuseport

WILDCARD = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def reuseport_socket(stack: ExitStack, family: int, port: int = 0) -> socket.socket:
    s = stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # as the server's wildcard socket
    s.bind((WILDCARD[family], port))
    s.setblocking(False)
    return s


def clients(stack: ExitStack, family: int, port: int, per_address: int = 8) -> list[tuple[str, socket.socket]]:
    """UDP clients connected to each address (so each only receives replies from it); several
    source ports, so that without the withdrawal the kernel's hash would pick the old socket too."""
    out = []
    for addr in ("127.0.0.1", "127.0.0.2", *(["::1"] if family == socket.AF_INET6 else [])):
        for _ in range(per_address):
            c = stack.enter_context(socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                                                  socket.SOCK_DGRAM))
            c.settimeout(2)
            c.connect((addr, port))
            out.append((addr, c))
    return out


def drain(sock: socket.socket) -> list[tuple[bytes, tuple, list]]:
    """Everything queued on `sock`, with its ancillary data (bounded)."""
    got = []
    for _ in range(1000):
        try:
            data, anc, _flags, addr = sock.recvmsg(2048, 256)
        except BlockingIOError:
            break
        got.append((data, addr, anc))
    return got


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "dual-stack"])
def test_a_withdrawn_wildcard_socket_keeps_its_queue_and_answers_from_each_address(family: int) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with ExitStack() as stack:
        old = reuseport_socket(stack, family)
        port = old.getsockname()[1]
        cs = clients(stack, family, port)
        for i, (addr, c) in enumerate(cs):
            c.send(f"before {i} {addr}".encode())
        new = reuseport_socket(stack, family, port)
        assert handover.has_successor(old)
        assert handover.withdraw(old)
        assert old.getsockname()[0] == LOOPBACK[family]  # rebound to loopback: out of the wildcard group
        for i, (addr, c) in enumerate(cs):
            c.send(f"after {i} {addr}".encode())
        queued = drain(old)
        assert sorted(d for d, _, _ in queued) == sorted(f"before {i} {a}".encode() for i, (a, _) in enumerate(cs))
        assert sorted(d for d, _, _ in drain(new)) == sorted(f"after {i} {a}".encode() for i, (a, _) in enumerate(cs))
        for data, addr, anc in queued:
            cmsg = handover.source_of(anc)
            assert cmsg, "the destination address came with the queued datagram"
            handover.SourcedSocket(old, cmsg).sendto(b"re: " + data, addr)
        for i, (addr, c) in enumerate(cs):
            assert c.recv(2048) == f"re: before {i} {addr}".encode()  # from the address it asked


def test_no_successor_no_withdrawal() -> None:
    with ExitStack() as stack:
        old = reuseport_socket(stack, socket.AF_INET)
        assert not handover.has_successor(old)
        assert not handover.withdraw(old)
        assert old.getsockname()[0] == "0.0.0.0"


def tcp_listener(stack: ExitStack, port: int = 0) -> socket.socket:
    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    s.setblocking(False)
    return s


def landed(stack: ExitStack, listeners: list[socket.socket], n: int = 40) -> list[int]:
    """Open `n` connections to the group; how many of them each listener's accept queue got (the
    probes steered to the others are left out)."""
    port = listeners[0].getsockname()[1]
    ours = {stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=2)).getsockname()[1]
            for _ in range(n)}
    counts = [0] * len(listeners)
    for _ in range(200):  # bounded: the last handshakes may still be completing
        for i, lst in enumerate(listeners):
            counts[i] += sum(1 for _, addr in handover._accept_all(lst) if addr[1] in ours)
        if sum(counts) == n:
            break
        time.sleep(0.01)
    return counts


@pytest.mark.parametrize("members", [2, 3])
async def test_a_steered_away_tcp_listener_gets_no_new_connection(members: int) -> None:
    """The unprivileged TCP hand-over: the retiring listener learns its index by probing, then the
    group's new connections all go to the others; a new member puts the kernel's hash back."""
    with ExitStack() as stack:
        group = [tcp_listener(stack)]
        group += [tcp_listener(stack, group[0].getsockname()[1]) for _ in range(members - 1)]
        for old in group:  # each member in turn, the others' queues emptied in between
            reuseport.join_group(old)
            accepted: list[socket.socket] = []
            assert await handover.steer_away(old, accepted)
            assert accepted == []  # no client but the probes
            counts = landed(stack, group)
            assert counts[group.index(old)] == 0 and sum(counts) == 40, counts
        reuseport.join_group(group[0])
        assert min(landed(stack, group, n=60)) > 0  # the hash again: every member gets some


async def test_no_other_listener_no_steering() -> None:
    with ExitStack() as stack:
        old = tcp_listener(stack)
        assert not handover.has_successor(old)
        assert not await handover.steer_away(old, [])
