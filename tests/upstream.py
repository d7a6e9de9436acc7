"""Real upstream DNS servers for tests: unbound on loopback, plus black-hole, dead-port and garbage helpers.

    with Unbound() as u:                      # or: async with Unbound() as u:
        corefile = f". {{\n forward . 127.0.0.1:{u.port}\n}}\n"

`Unbound` runs the Debian /usr/sbin/unbound in the foreground on 127.0.0.1 (UDP+TCP on one ephemeral
port, optionally DoT on a second one), answering only from local-data: the root is a `refuse` (or
`static`) local zone and the only outgoing interface is 127.0.0.1, so it never sends a packet off the
machine. `DEFAULT_ZONES` has the shapes forward/cache tests need (TTLs, CNAME, NXDOMAIN/NODATA with
SOA, many A records, TXT answers above 512 and 1232 bytes, MX).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable

from pycoredns_conformance.upstream import MAIN_ZONES, UNBOUND, SyncAsync, free_port, make_tls_cert, probe_query
from pycoredns_conformance.upstream import Unbound as _Unbound

__all__ = ["UNBOUND", "BlackHole", "DeadPort", "GarbageUpstream", "Unbound", "free_port", "make_tls_cert", "reply_for"]


#: Default zone data. Names used by tests: a (A ttl 300), a6 (A + AAAA), short (A ttl 5), long (A ttl 86400),
#: www (CNAME -> a), nodata (A only: AAAA is NODATA), many (20 A records), mx (MX), medium (TXT ~800 bytes:
#: > 512), big (TXT ~2000 bytes: > 1232). Any other name in example.org. is NXDOMAIN with the SOA.
DEFAULT_ZONES: dict[str, list[str]] = {
    # the conformance suite's example.org. (a superset: it also has ttl3 and s0..s9)
    "example.org.": MAIN_ZONES["example.org."],
    "example.net.": [
        "example.net. 3600 IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 60",
        "a.example.net. 300 IN A 198.51.100.1",
    ],
}


class Unbound(_Unbound):
    """pycoredns_conformance.upstream.Unbound with the tests' DEFAULT_ZONES when no zones are given."""

    def __init__(self, zones: dict[str, list[str]] | None = None, **kw) -> None:
        super().__init__(DEFAULT_ZONES if zones is None else zones, **kw)


class _Listener(SyncAsync):
    """A UDP socket and a TCP listener on one 127.0.0.1 port served by a daemon thread (bounded select loop)."""

    def __init__(self) -> None:
        self.port = 0
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queries = 0  # UDP datagrams + TCP messages received (tests may read it)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        for _ in range(20):
            port = free_port()
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(256)
            self.udp, self.tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("no free port")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def _loop(self) -> None:
        assert self.udp is not None and self.tcp is not None
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        sel.register(self.tcp, selectors.EVENT_READ, "listen")
        conns: dict[socket.socket, bytearray] = {}
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if key.data == "udp":
                        try:
                            data, peer = sock.recvfrom(65535)
                        except OSError:
                            continue
                        self.queries += 1
                        for reply in self.on_query(data):
                            with contextlib.suppress(OSError):
                                sock.sendto(reply, peer)
                    elif key.data == "listen":
                        with contextlib.suppress(OSError):
                            conn, _ = sock.accept()
                            conns[conn] = bytearray()
                            sel.register(conn, selectors.EVENT_READ, "conn")
                    else:
                        try:
                            chunk = sock.recv(65535)
                        except OSError:
                            chunk = b""
                        if not chunk:
                            sel.unregister(sock)
                            sock.close()
                            conns.pop(sock, None)
                            continue
                        buf = conns[sock]
                        buf += chunk
                        while len(buf) >= 2 and len(buf) >= 2 + (n := struct.unpack("!H", buf[:2])[0]):
                            msg = bytes(buf[2:2 + n])
                            del buf[:2 + n]
                            self.queries += 1
                            for reply in self.on_query(msg):
                                with contextlib.suppress(OSError):
                                    sock.sendall(struct.pack("!H", len(reply)) + reply)
        finally:
            for c in conns:
                c.close()
            sel.close()

    def on_query(self, data: bytes) -> list[bytes]:
        """Replies to send for one query (none by default)."""
        return []


class BlackHole(_Listener):
    """UDP+TCP on one port: reads every query (counted in `queries`) and never answers."""


class DeadPort:
    """A 127.0.0.1 port with nothing listening (UDP gets ICMP port unreachable, TCP gets RST)."""

    def __init__(self) -> None:
        self.port = free_port()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DeadPort:
        return self

    def __exit__(self, *exc) -> None:
        pass

    async def __aenter__(self) -> DeadPort:
        return self

    async def __aexit__(self, *exc) -> None:
        pass


def _question_end(msg: bytes) -> int:
    """Offset after the first question (uncompressed name, as in queries)."""
    off = 12
    while off < len(msg) and msg[off]:
        off += 1 + msg[off]
    return off + 5


def reply_for(query: bytes, *, qid: int | None = None, rcode: int = 0, answer_a: str | None = "192.0.2.99",
              flags: int = 0x8180, question: bytes | None = None, pad_to: int = 0) -> bytes:
    """A hand-built reply to `query`: same question (or `question`), one A record, optional ID/flags/padding.

    `pad_to` appends a TXT-free padding record count trick: extra A records until the reply is >= pad_to bytes.
    """
    qend = _question_end(query)
    q = question if question is not None else query[12:qend]
    rid = struct.unpack("!H", query[:2])[0] if qid is None else qid
    answers = b""
    count = 0
    if answer_a is not None:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(answer_a)
        answers, count = rr, 1
        while pad_to and 12 + len(q) + len(answers) < pad_to:
            answers += rr
            count += 1
    header = struct.pack("!HHHHHH", rid, flags | rcode, 1, count, 0, 0)
    return header + q + answers


class GarbageUpstream(_Listener):
    """UDP+TCP upstream misbehaving per `mode`, for bad-input tests.

    modes: garbage (random bytes), short (5 bytes), wrong_id (reply with another ID only),
    wrong_id_then_ok (a wrong-ID reply, then the right one), wrong_question (right ID, other question),
    oversized (a valid 4000-byte reply even without EDNS), ok (a valid reply, A 192.0.2.99),
    or a callable `query -> list[bytes]`.
    """

    def __init__(self, mode: str | Callable[[bytes], list[bytes]] = "garbage") -> None:
        super().__init__()
        self.mode = mode

    def on_query(self, data: bytes) -> list[bytes]:
        if len(data) < 12:
            return []
        if callable(self.mode):
            return self.mode(data)
        qid = struct.unpack("!H", data[:2])[0]
        other = (qid + 1) & 0xFFFF
        if self.mode == "garbage":
            return [os.urandom(40)]
        if self.mode == "short":
            return [data[:2] + b"\x81\x80\x00"]
        if self.mode == "wrong_id":
            return [reply_for(data, qid=other)]
        if self.mode == "wrong_id_then_ok":
            return [reply_for(data, qid=other, answer_a="192.0.2.66"), reply_for(data)]
        if self.mode == "wrong_question":
            return [reply_for(data, question=probe_query("wrong.example.com.", 1)[12:])]
        if self.mode == "oversized":
            return [reply_for(data, pad_to=4000)]
        if self.mode == "ok":
            return [reply_for(data)]
        raise ValueError(f"unknown mode {self.mode!r}")
