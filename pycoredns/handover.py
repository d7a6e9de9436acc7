"""Zero-loss hand-over of a listening address on shutdown (surge upgrades, `-workers` restarts).

Several processes can serve one address with SO_REUSEPORT; the kernel hashes each datagram to one
socket of the group. Closing a UDP socket drops whatever is queued on it, and a socket that merely
stops reading keeps being chosen for new datagrams until it closes. So before it closes, a retiring
process *withdraws* each UDP socket that has a successor (another unconnected socket on the same
port that takes the same destination): it connects the socket to its own address. A connected
member of a reuseport group is skipped by the kernel's hash selection (Linux >= 5.x:
`reuseport_select_sock_by_hash` passes over TCP_ESTABLISHED sockets) and only matches datagrams from
its peer — here itself, which never sends. The queue stays; the process reads it to the end and
answers every query in it, from the same address and port (Linux allows `sendto` with an address on
a connected UDP socket), then closes.

A wildcard socket is connected to loopback instead (its own port): that rebinds it to the loopback
address, out of the wildcard group's hash slot (and connected, so passed over in any case); the
queue again stays. Its replies would now leave from loopback, so each
queued datagram is read with its destination address (IP_PKTINFO / IPV6_RECVPKTINFO, switched on
just before: the address comes from the datagram's own header, so the ones already queued have it
too) and answered with that address as the source (the same control message on `sendmsg`), as
CoreDNS's UDP sessions do. A socket without a successor drains its queue and closes in one
synchronous step.

Successors are found in /proc/net/udp{,6} of the process's own network namespace.

TCP: closing a listener resets the connections the kernel holds for it — those in its accept queue
and the handshakes still in progress (the client's final ACK not yet in, say it was lost on the
way) — unless they migrate to another listener of the reuseport group. Before it closes a listener
with a successor, a retiring process has the group migrate them (`reuseport.allow_migration`, with
CAP_BPF), or else steers new connections to the other listeners and accepts until its own are in
(`steer_away`). net.ipv4.tcp_migrate_req is left alone: it is per network namespace, and a
node-local cache shares the node's.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import trio

from . import log, reuseport

if TYPE_CHECKING:
    from .server import Listener, UDPTransport

_TCP_CLOSE = "07"  # /proc/net/udp state of an unconnected UDP socket
_TCP_LISTEN = "0A"  # /proc/net/tcp state of a listening socket
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python names it from 3.12 on
_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}
# withdrawn wildcard sockets: their replies name their source address
_SOURCED: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def _proc_hex(family: int, host: str) -> str:
    """An address as /proc/net/udp prints it: each 32-bit word in host byte order, in hex."""
    packed = socket.inet_pton(family, host)
    if sys.byteorder == "little":
        packed = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
    return packed.hex().upper()


class _Sock(NamedTuple):
    addr: str  # local address as /proc prints it (hex)
    inode: int
    uid: int
    v6: bool  # from /proc/net/*6


def _sockets(port: int, tcp: bool = False) -> list[_Sock]:
    """Every unconnected UDP socket on `port` (`tcp`: every listening TCP socket)."""
    out: list[_Sock] = []
    suffix = f":{port:04X}"
    state = _TCP_LISTEN if tcp else _TCP_CLOSE
    for path in (("/proc/net/tcp", "/proc/net/tcp6") if tcp else ("/proc/net/udp", "/proc/net/udp6")):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or not fields[1].endswith(suffix) or fields[3] != state:
                continue
            out.append(_Sock(fields[1][: -len(suffix)], int(fields[9]), int(fields[7]), path.endswith("6")))
    return out


def has_successor(sock: socket.socket) -> bool:
    """Whether another socket on this port takes what is sent to this socket's address: an
    unconnected UDP socket for a UDP one, a listening TCP socket for a TCP listener."""
    try:
        host, port = sock.getsockname()[:2]
        ino = os.fstat(sock.fileno()).st_ino
    except OSError:
        return False
    ours = _proc_hex(sock.family, host)
    wildcards = {"0" * 8, "0" * 32}
    return any(ino != other.inode and (other.addr == ours or other.addr in wildcards)
               for other in _sockets(port, tcp=sock.type == socket.SOCK_STREAM))


def _group_size(sock: socket.socket) -> int:
    """How many listeners share this TCP listener's reuseport group (itself included), as far as
    /proc tells: same family, address, port and owner."""
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return 0
    ours, uid, v6 = _proc_hex(sock.family, host), os.geteuid(), sock.family == socket.AF_INET6
    return sum(1 for s in _sockets(port, tcp=True) if s.addr == ours and s.uid == uid and s.v6 == v6)


def is_wildcard(sock: socket.socket) -> bool:
    try:
        host = sock.getsockname()[0]
    except OSError:
        return True
    return host in ("0.0.0.0", "::")


def withdraw(sock: socket.socket) -> bool:
    """Take a UDP socket out of its reuseport group, keeping its queue.

    True when withdrawn: the kernel sends it nothing new, and what it already queued is still
    there to be read. False (and nothing changed) without a successor, or when connect fails.
    A specifically bound socket is connected to itself; a wildcard one to loopback on its port
    (its replies then name their source: `finish_udp`).
    """
    if sock.type != socket.SOCK_DGRAM or not has_successor(sock):
        return False
    try:
        if is_wildcard(sock):
            _receive_destinations(sock)
            sock.connect((_LOOPBACK[sock.family], sock.getsockname()[1]))
            _SOURCED.add(sock)
        else:
            sock.connect(sock.getsockname())
    except (OSError, KeyError):
        return False
    return True


def _receive_destinations(sock: socket.socket) -> None:
    """Have each datagram read with recvmsg carry the address it was sent to."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


def source_of(ancdata: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """The control message that makes a reply leave from the address a datagram was sent to (from
    that datagram's recvmsg ancillary data); [] when it has none."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # struct in_pktinfo {int ifindex; in_addr spec_dst; in_addr addr}: send from addr
            return [(level, kind, struct.pack("=i4s4s", 0, data[8:12], bytes(4)))]
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            # struct in6_pktinfo {in6_addr addr; int ifindex}: the interface is left to routing
            return [(level, kind, data[:16] + struct.pack("=i", 0))]
    return []


class SourcedSocket:
    """Stands for a withdrawn wildcard socket in its replies: `sendto` sends from a given address."""

    __slots__ = ("cmsg", "sock")

    def __init__(self, sock: socket.socket, cmsg: list[tuple[int, int, bytes]]) -> None:
        self.sock = sock
        self.cmsg = cmsg

    def sendto(self, data: bytes, addr: Any) -> int:
        return self.sock.sendmsg([data], self.cmsg, 0, addr)


# -- the last reads of a retiring listener ----------------------------------------------------------

DRAIN_PASS = 4096  # datagrams read per synchronous pass
POLL = 0.002  # seconds between passes while queries are in flight


def _drain_once(lst: Listener, sock: socket.socket, transport: UDPTransport,
                sourced: dict[bytes, UDPTransport] | None) -> bool:
    """Read and dispatch what is queued (at most DRAIN_PASS datagrams); True when the queue is empty.

    `sourced` (a withdrawn wildcard socket): a transport per destination address, made on first use,
    whose replies leave from that address."""
    for _ in range(DRAIN_PASS):
        try:
            if sourced is None:
                data, addr = sock.recvfrom(65535)
            else:
                data, ancdata, _flags, addr = sock.recvmsg(65535, 256)
                transport = _sourced_transport(lst, sock, source_of(ancdata), sourced)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno in (errno.EBADF, errno.ENOTSOCK):
                return True
            continue  # an ICMP error reported on the socket
        lst.dispatch(data, addr, transport)
    return False


def _sourced_transport(lst: Listener, sock: socket.socket, cmsg: list[tuple[int, int, bytes]],
                       made: dict[bytes, UDPTransport]) -> UDPTransport:
    """The transport whose replies carry `cmsg` (leave from one address), one per address."""
    key = cmsg[0][2] if cmsg else b""
    transport = made.get(key)
    if transport is None:  # UDPWriter only calls sendto on what stands for the socket
        transport = made[key] = lst.udp_transport(cast(socket.socket, SourcedSocket(sock, cmsg)))
    return transport


async def finish_udp(lst: Listener, sock: socket.socket, deadline: float) -> None:
    """Answer every queued datagram and every query in flight, then close the socket.

    The close follows the read that found the queue empty with no await in between, so a socket
    that was not withdrawn (no successor) loses nothing that arrived before. Bounded by `deadline`
    (trio time): the socket closes then whatever is still running.
    """
    transport = lst.udp_transport(sock)
    sourced: dict[bytes, UDPTransport] | None = {} if sock in _SOURCED else None
    while True:
        empty = _drain_once(lst, sock, transport, sourced)
        if (empty and lst.inflight == 0) or trio.current_time() >= deadline:
            sock.close()
            return
        await trio.sleep(POLL)


# -- TCP without BPF privileges: new connections steered to the other listeners -------------------
#
# A retiring listener learns its own index in the group by probing (`_own_index`), has every new
# connection sent to one of the others (`reuseport.steering_program`), keeps accepting for TCP_GRACE so the
# handshakes in progress on it finish into its queue, then accepts what is queued and closes:
# nothing is left on it to reset. The program stays on the group after the close (it then favours
# some listeners, never a closed one); a listener joining the group resets it (`reuseport.join_group`).

TCP_GRACE = 1.0  # seconds: a handshake whose last ACK was lost is completed by the client's retransmission
PROBES = 3  # probe connections per index of the group
PROBE_POLLS = 200  # at PROBE_POLL apart: the bound on learning the own index
PROBE_POLL = 0.005
STEER_TRIES = 2  # probe rounds: a group that changed during one (a worker's replacement joined) is probed again


async def _own_index(sock: socket.socket, members: int, accepted: list[socket.socket]) -> int | None:
    """This listener's index in its reuseport group, or None when the probes do not tell.

    PROBES connections per index (from this process, each from its own port, each sending a byte
    so that a lost handshake ACK is made good by the data) are steered to that index; the one index
    whose probes arrive here is ours. Probes of two indexes here (an index past the group falls to
    the hash) tell nothing. Client connections accepted meanwhile go to `accepted`."""
    host, port = sock.getsockname()[:2]
    target = _LOOPBACK[sock.family] if is_wildcard(sock) else host
    probes: dict[int, int] = {}
    clients: list[socket.socket] = []
    seen: dict[int, int] = {}
    try:
        for index in [k for k in range(members) for _ in range(PROBES)]:
            c = socket.socket(sock.family, socket.SOCK_STREAM)
            clients.append(c)
            c.setblocking(False)
            c.bind(("", 0))
            probes[c.getsockname()[1]] = index
        if not reuseport.attach_cbpf(sock, reuseport.probe_program(probes)):
            return None
        for c in clients:
            c.connect_ex((target, port))
        unsent = list(clients)
        for _ in range(PROBE_POLLS):
            unsent = [c for c in unsent if not _sent_byte(c)]
            for conn, addr in _accept_all(sock):
                probe = probes.get(addr[1])
                if probe is None:
                    accepted.append(conn)
                else:
                    conn.close()
                    seen[probe] = seen.get(probe, 0) + 1
            if PROBES in seen.values():
                break
            await trio.sleep(PROBE_POLL)
    except OSError:
        return None
    finally:
        for c in clients:
            c.close()
    return next(iter(seen)) if len(seen) == 1 else None


def _sent_byte(c: socket.socket) -> bool:
    try:
        return c.send(b"\0") == 1
    except OSError:
        return False  # not connected yet


async def steer_away(sock: socket.socket, accepted: list[socket.socket]) -> bool:
    """Have every new connection of the group go to one of the other listeners (at random);
    True when in place. Client connections accepted while probing go to `accepted`."""
    for _ in range(STEER_TRIES):  # a member joining meanwhile puts the hash back over the probe program
        members = _group_size(sock)
        if members < 2:
            return False
        index = await _own_index(sock, members, accepted)
        if index is not None:
            return reuseport.attach_cbpf(sock, reuseport.steering_program(members, index))
    return False


# -- a retiring TCP listener -------------------------------------------------------------------------


def _accept_all(sock: socket.socket, limit: int = 4096) -> list[tuple[socket.socket, Any]]:
    """What the accept queue holds now (at most `limit`)."""
    out = []
    for _ in range(limit):
        try:
            out.append(sock.accept())
        except OSError:
            break  # BlockingIOError: the queue is empty
    return out


def _serve(lst: Listener, conns: list[socket.socket]) -> None:
    """Serve connections accepted by the hand-over like the listener's own (its connection limit too)."""
    assert lst.nursery is not None
    for conn in conns:
        token = object()
        try:
            lst.tcp_limit.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            conn.close()  # over the connection limit, as accept() would have waited
            continue
        conn.setblocking(False)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        lst.nursery.start_soon(lst._tcp_conn, stream, token)


async def finish_tcp(lst: Listener, sock: socket.socket, deadline: float) -> None:
    """Stop accepting: take every connection already in the accept queue, then close the listener.

    With a successor, the group is first made to migrate (`reuseport.allow_migration`): what arrives between
    the last accept and the close, and the handshakes still in progress, move to the successor.
    Without the privilege for that, new connections are steered to the other listeners
    (`steer_away`) and this one keeps accepting for TCP_GRACE (bounded by `deadline`). The
    connections in the queue are accepted here and served like any other connection of a retiring
    listener: queries already sent are answered, then it closes.
    """
    if has_successor(sock):
        why = reuseport.allow_migration(sock)
        if why:
            accepted: list[socket.socket] = []
            steered = await steer_away(sock, accepted)
            _serve(lst, accepted)
            if not steered:
                log.core.warning(f"{lst.label}: TCP connections in progress at close are reset unless "
                                 f"net.ipv4.tcp_migrate_req=1 ({why}; steering failed)")
            end = min(trio.current_time() + TCP_GRACE, deadline)
            while steered and trio.current_time() < end:
                with trio.move_on_at(end):
                    await trio.lowlevel.wait_readable(sock)
                _serve(lst, [conn for conn, _ in _accept_all(sock)])
    conns = [conn for conn, _ in _accept_all(sock, int(lst.tcp_limit.total_tokens))]
    trio.lowlevel.notify_closing(sock)  # trio may still hold it from wait_readable
    sock.close()
    _serve(lst, conns)
