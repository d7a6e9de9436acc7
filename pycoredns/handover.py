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
way) — unless they migrate to another listener of the reuseport group. The kernel migrates them when
net.ipv4.tcp_migrate_req is 1 (Linux >= 5.14), or, whatever that sysctl says, when the group has an
SK_REUSEPORT program loaded as BPF_SK_REUSEPORT_SELECT_OR_MIGRATE. Before it closes a listener, a
retiring process attaches the smallest such program (`return SK_PASS`, no selection: new
connections are still spread by the kernel's hash, as without a program) so the group migrates
(`allow_migration`). It needs CAP_BPF (or CAP_SYS_ADMIN) and Linux >= 5.14; without them the
listener closes as before, and net.ipv4.tcp_migrate_req=1 on the node does the same job. The
sysctl is left alone: it is per network namespace, and a node-local cache shares the node's.
The program stays on the group after the listener closes; it changes nothing but that closing
members' connections migrate.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import sys
import weakref
from typing import TYPE_CHECKING, Any, cast

import trio

from . import log

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


def _sockets(port: int, tcp: bool = False) -> list[tuple[str, int]]:
    """(local address in /proc hex, inode) of every unconnected UDP socket on `port` (`tcp`: every
    listening TCP socket)."""
    out: list[tuple[str, int]] = []
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
            out.append((fields[1][: -len(suffix)], int(fields[9])))
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
    return any(ino != other and (addr == ours or addr in wildcards)
               for addr, other in _sockets(port, tcp=sock.type == socket.SOCK_STREAM))


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


# -- TCP: migration of what a closing listener holds ------------------------------------------------

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_SK_REUSEPORT = 21
_BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40
SO_ATTACH_REUSEPORT_EBPF = 52
# r0 = SK_PASS; exit  (struct bpf_insn: code, dst/src registers, offset, immediate)
_PASS = struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0)
_LICENSE = ctypes.create_string_buffer(b"GPL")


def _load_migrate_program() -> int:
    """The program's fd (close it once attached), or -errno."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        return -errno.ENOSYS
    insns = ctypes.create_string_buffer(_PASS, len(_PASS))
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, BPF_PROG_LOAD's fields; the rest zero
    struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_SK_REUSEPORT, len(_PASS) // 8,
                     ctypes.addressof(insns), ctypes.addressof(_LICENSE))
    struct.pack_into("<I", attr, 68, _BPF_SK_REUSEPORT_SELECT_OR_MIGRATE)  # expected_attach_type
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_int(_BPF_PROG_LOAD), attr, ctypes.c_uint(len(attr)))
    return fd if fd >= 0 else -ctypes.get_errno()


def allow_migration(sock: socket.socket) -> str:
    """Have the kernel move what `sock` (a listening TCP socket) holds to another listener of its
    reuseport group when it closes. '' when done, else why not (the listener then closes as before:
    its queued connections are reset unless net.ipv4.tcp_migrate_req is 1)."""
    fd = _load_migrate_program()
    if fd < 0:
        return f"BPF program not loaded: {os.strerror(-fd)}"
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, fd)
    except OSError as e:
        return f"BPF program not attached: {e.strerror}"
    finally:
        os.close(fd)
    return ""


def finish_tcp(lst: Listener, sock: socket.socket) -> None:
    """Stop accepting: take every connection already in the accept queue, then close the listener.

    With a successor, the group is first made to migrate (`allow_migration`): what arrives between
    the last accept and the close, and the handshakes still in progress, move to the successor.
    The connections in the queue are accepted here and served like any other connection of a
    retiring listener: queries already sent are answered, then it closes.
    """
    if has_successor(sock):
        why = allow_migration(sock)
        if why:
            log.core.warning(f"{lst.label}: TCP connections in progress at close are reset unless "
                             f"net.ipv4.tcp_migrate_req=1 ({why})")
    accepted: list[socket.socket] = []
    for _ in range(int(lst.tcp_limit.total_tokens)):
        try:
            conn, _addr = sock.accept()
        except OSError:
            break  # BlockingIOError: the queue is empty
        accepted.append(conn)
    sock.close()
    assert lst.nursery is not None
    for conn in accepted:
        token = object()
        try:
            lst.tcp_limit.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            conn.close()  # over the connection limit, as accept() would have waited
            continue
        conn.setblocking(False)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        lst.nursery.start_soon(lst._tcp_conn, stream, token)
