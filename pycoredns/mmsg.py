"""Batched UDP sends: Linux's `sendmmsg` through ctypes, flushed at the end of a drain iteration.

CPython 3.11's socket module has no `sendmmsg`. The UDP drain loops (the listener's, each forward
upstream socket's reader) set `DEFER.active` while they handle the datagrams they read; a send made
meanwhile is copied into its socket's `SendBatch`, and the loop calls `DEFER.flush()` before every
await (`wait_readable`, the checkpoint every 64 packets, and when it ends). Outside a drain
iteration (timers, tasks, TCP) `active` is False and callers send at once, so no datagram waits
longer than the iteration that made it, and no timer is involved.

Why: on loopback a send's kernel work (the receiver's IP/UDP input, its wake-up) runs in the sender's
system call, and it is cheaper when the kernel's code and data stay warm across a batch than when
every packet's send is separated by ~20 µs of Python. Measured (bench/README.md, issue 11): forward
over UDP 14-15 % less server CPU per query. One ctypes call costs about 2.5 µs more than
`socket.send`, so a batch of one is worse; the saving comes with batches of a few or more, which is
what the drain loops produce under load. A flush of one datagram (a drain iteration that handled one
packet: common when the server has time to spare) goes out with `send`/`sendto` instead. `recvmmsg`
was measured too and not used (it saves about 0.2 µs per packet at batches of 16 and costs more at
small ones, and needs the sender's address decoded in Python).

A connected batch (forward's upstream socket) sends each run of two or more datagrams of one size
(up to GSO_MAX bytes) with one `sendmsg` carrying UDP_SEGMENT (UDP GSO, Linux 4.18): the kernel cuts
it into the same datagrams, but its IP output, the loopback hop and the receiver's IP input run once
per run instead of once per datagram (~0.9 instead of ~3.2 µs per datagram on loopback). Queries to
one upstream often have one size (names of one length); other sizes between runs still go by
sendmmsg, in queue order. A kernel or route without GSO (EINVAL, EIO...) turns it off for that batch.

Without `sendmmsg` (other systems than Linux) `AVAILABLE` is False and every send goes out at once as before.
One trio run per thread: `DEFER` is process-wide state of the thread that runs the server.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["AVAILABLE", "DEFER", "SOCKADDRS", "Flushable", "SendBatch", "sockaddr"]

BATCH = 64  # datagrams per sendmmsg (the drain loops checkpoint every 64 packets anyway)
SLOT = 65536  # bytes reserved per datagram (a UDP payload is at most 65,507); backed only when used
NAME = 28  # room for a sockaddr_in6
NAME_MEMO = 4096  # client addresses whose sockaddr is kept (cleared when full)
UDP_SEGMENT = 103  # linux/udp.h: one send holding datagrams of this many bytes each (UDP GSO, Linux 4.18)
GSO_MAX = 512  # datagrams up to this size may go out by GSO (far below any path's MTU: no EINVAL there)
GSO = True  # False: never try UDP_SEGMENT (a batch also stops trying when its kernel refuses it)
_NO_GSO = frozenset({errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP})  # GSO not offered here


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_HDR_WORDS = ctypes.sizeof(_Mmsghdr) // 4  # the headers are read and written as 32-bit words
_NAMELEN = _Msghdr.msg_namelen.offset // 4


def _load() -> Callable[..., int] | None:
    if sys.platform != "linux":  # the sockaddr layout below is Linux's (no sin_len)
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # non-blocking calls: no need to drop the GIL
        fn: Any = libc.sendmmsg
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_sendmmsg = _load()
AVAILABLE = _sendmmsg is not None


class Flushable(Protocol):
    """Something holding sends until the drain iteration ends: a SendBatch, a TCP connection's buffer."""

    def flush(self) -> None: ...


class Deferral:
    """Whether sends are queued now (inside a drain iteration) and what holds some.

    Besides `SendBatch`, anything with a `flush()` may append itself to `dirty` while `active` (once
    per iteration): forward's TCP connections gather the frames of one iteration into one `send`."""

    __slots__ = ("active", "dirty")

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[Flushable] = []

    def flush(self) -> None:
        """Send everything queued and stop queueing. A batch's `on_fail` may send again (the next
        upstream): that send goes out at once, since `active` is already False."""
        self.active = False
        dirty, self.dirty = self.dirty, []
        for batch in dirty:
            batch.flush()


DEFER = Deferral()


class SendBatch:
    """Datagrams queued for one socket: to its peer (`add`, a connected socket) or to an address
    each (`add_to`). A datagram the kernel refuses is reported to `on_fail(tag, errno)`."""

    __slots__ = ("_addr", "_buf", "_first", "_hdrs", "_iov", "_mem", "_names", "_words", "count", "gso", "largest",
                 "on_fail", "sock", "tags")

    def __init__(self, sock: socket.socket, on_fail: Callable[[Any, int], None] | None = None,
                 named: bool = False) -> None:
        self.sock = sock
        self.on_fail = on_fail
        self.count = 0
        self.largest = 0  # most datagrams sent by one flush (tests and benchmarks read it)
        self.tags: list[Any] = []
        self._first = b""  # the first datagram's sockaddr (a flush of one sends it with sendto)
        self.gso = not named and GSO  # runs of equal datagrams to the connected peer go out by UDP GSO
        self._mem = mmap.mmap(-1, BATCH * SLOT)  # anonymous: pages are backed only once written
        self._buf = memoryview(self._mem)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._mem))
        iovs = (_Iovec * BATCH)()
        hdrs = (_Mmsghdr * BATCH)()
        names = (ctypes.c_char * (BATCH * NAME))()
        for i in range(BATCH):
            iovs[i].iov_base = base + i * SLOT
            hdrs[i].msg_hdr.msg_iov = ctypes.addressof(iovs[i])
            hdrs[i].msg_hdr.msg_iovlen = 1
            if named:
                hdrs[i].msg_hdr.msg_name = ctypes.addressof(names) + i * NAME
        self._hdrs = hdrs
        self._addr = ctypes.addressof(hdrs)
        self._iov = memoryview(iovs).cast("B").cast("Q")  # iov_len of datagram i: word 2 * i + 1
        self._words = memoryview(hdrs).cast("B").cast("I")
        self._names = memoryview(names).cast("B")

    def add(self, data: bytes, tag: Any = None, name: bytes = b"") -> int:
        """Queue `data` (at most SLOT bytes), to the address `name` (sockaddr bytes, see `sockaddr`;
        empty: the connected peer); its slot. A full batch is sent first."""
        i = self.count
        if i == BATCH:
            self.flush()
            i = 0
        n = len(data)
        off = i * SLOT
        self._buf[off : off + n] = data
        self._iov[2 * i + 1] = n
        self.tags.append(tag)
        self.count = i + 1
        if name:
            n = len(name)
            self._names[i * NAME : i * NAME + n] = name
            self._words[i * _HDR_WORDS + _NAMELEN] = n
        if i == 0:
            self._first = name
            DEFER.dirty.append(self)
        return i

    def add_to(self, data: bytes, name: bytes) -> None:
        """Queue `data` for the address `name` (sockaddr bytes, see `sockaddr`)."""
        self.add(data, None, name)

    def flush(self) -> None:
        """One sendmmsg for the queue (more when the kernel takes a part), runs of equal datagrams of a
        connected socket as one UDP GSO send each (`_send_run`); then report failures."""
        count, tags = self.count, self.tags
        if not count:
            return
        self.count = 0
        self.tags = []
        if count > self.largest:
            self.largest = count
        fd = self.sock.fileno()  # -1 once the socket is closed: its number may belong to another one now
        if fd < 0:
            return
        failed: list[tuple[Any, int]] = []
        if count == 1:  # socket.send costs ~2.5 µs less than a ctypes call (module docstring)
            name = self._first
            addr = _ADDRS.get(name) if name else None
            if addr is not None or not name:
                try:
                    if addr is None:
                        self.sock.send(self._buf[: self._iov[1]])
                    else:
                        self.sock.sendto(self._buf[: self._iov[1]], addr)
                except OSError as e:
                    failed.append((tags[0], e.errno or errno.EIO))
            else:
                self._sendmmsg(fd, 0, 1, tags, failed)
        elif self.gso:
            plain = 0  # the first datagram not sent yet
            for start, end, size in self._runs(count):
                self._sendmmsg(fd, plain, start, tags, failed)
                plain = self._send_run(start, end, size, tags, failed)
                self._sendmmsg(fd, plain, end, tags, failed)  # what the run's send did not take
                plain = end
            self._sendmmsg(fd, plain, count, tags, failed)
        else:
            self._sendmmsg(fd, 0, count, tags, failed)
        if self.on_fail is not None:
            for tag, err in failed:
                self.on_fail(tag, err)

    def _sendmmsg(self, fd: int, done: int, count: int, tags: list[Any], failed: list[tuple[Any, int]]) -> None:
        """Datagrams done..count-1 by sendmmsg; a refused one goes to `failed` and the rest are sent."""
        assert _sendmmsg is not None
        while done < count:
            sent = _sendmmsg(fd, self._addr + done * _HDR_WORDS * 4, count - done, 0)
            if sent < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                failed.append((tags[done], err))  # the datagram at `done` was refused; go on after it
                sent = 1
            done += sent

    def _runs(self, count: int) -> list[tuple[int, int, int]]:
        """(start, end, size) of each run of two or more queued datagrams of one size up to GSO_MAX."""
        sizes = self._iov[1 : 2 * count : 2].tolist()
        n = sizes[0]
        if sizes.count(n) == count:  # one size (queries for names of one length): no walk
            return [(0, count, n)] if n <= GSO_MAX else []
        runs = []
        i = 0
        while i < count:
            n = sizes[i]
            j = i + 1
            while j < count and sizes[j] == n:
                j += 1
            if j - i > 1 and n <= GSO_MAX:
                runs.append((i, j, n))
            i = j
        return runs

    def _send_run(self, start: int, end: int, size: int, tags: list[Any], failed: list[tuple[Any, int]]) -> int:
        """Datagrams start..end-1, each `size` bytes, to the connected peer in one send with UDP_SEGMENT:
        the kernel cuts it into the same datagrams, and its IP and loopback path run once for the run
        (~0.9 instead of ~3.2 µs per datagram measured on loopback, bench/README.md). The first datagram
        not sent: `end`; `start` when the kernel does not offer GSO here (then never tried again on this
        batch); `start + 1` when it refused the send (that error is the first datagram's, as sendmmsg
        would report it)."""
        buf = self._buf
        try:
            self.sock.sendmsg([buf[i * SLOT : i * SLOT + size] for i in range(start, end)],
                              [(socket.SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))])
        except OSError as e:
            if e.errno in _NO_GSO:
                self.gso = False
                return start
            failed.append((tags[start], e.errno or errno.EIO))
            return start + 1
        return end

    def drop(self) -> None:
        """The socket is closing: forget the queue (its descriptor number may be reused)."""
        self.count = 0
        self.tags = []


SOCKADDRS: dict[tuple[Any, ...], bytes] = {}
"""`sockaddr`'s memo (address tuple -> sockaddr bytes); callers on a hot path may read it first."""
_ADDRS: dict[bytes, tuple[Any, ...]] = {}  # the reverse, for a flush of one datagram (sendto takes a tuple)


def sockaddr(addr: tuple[Any, ...]) -> bytes:
    """The sockaddr_in / sockaddr_in6 bytes of an address tuple as `recvfrom` returns it (memoised).

    ValueError/OSError for what is not an IP address tuple."""
    raw = SOCKADDRS.get(addr)
    if raw is None:
        port = addr[1].to_bytes(2, "big")
        if len(addr) == 2:
            raw = socket.AF_INET.to_bytes(2, sys.byteorder) + port + socket.inet_aton(addr[0]) + bytes(8)
        else:  # host, port, flowinfo, scope id (a scoped host may read "fe80::1%eth0")
            host = addr[0].split("%", 1)[0]
            raw = (socket.AF_INET6.to_bytes(2, sys.byteorder) + port + addr[2].to_bytes(4, "big")
                   + socket.inet_pton(socket.AF_INET6, host) + addr[3].to_bytes(4, sys.byteorder))
        if len(SOCKADDRS) >= NAME_MEMO:
            SOCKADDRS.clear()
            _ADDRS.clear()
        SOCKADDRS[addr] = raw
        _ADDRS[raw] = addr
    return raw
