"""The loop handler and its self-probe (CoreDNS `loop`).

At startup a background task sends `HINFO <random>.<random>.<zone>` to the block's own listener
(every second for up to 30s until an exchange completes; then the plugin disables itself two
seconds later). If the probe comes back to us more than twice, queries are looping: log
`[FATAL] plugin/loop: Loop (...) detected ...` and exit the process with status 1, as CoreDNS does.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import sys
from collections.abc import Awaitable, Callable

import trio

from pycoredns import log as corelog
from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import NEXT, Request, ResponseWriter, SyncHandler, go_quote
from pycoredns.wire import TYPE_HINFO

log = plugin_logger("loop")

PROBE_FOR = 30.0  # seconds of retries
PROBE_EVERY = 1.0
EXCHANGE_TIMEOUT = 2.0  # miekg's dns.Exchange default
DISABLE_AFTER = 2.0


def _addr(host: str, port: int) -> str:
    """Go's net.Addr.String() form: `ip:port`, `[v6]:port`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def fatal_exit(message: str) -> None:
    """Log at FATAL and end the process with status 1 right away (Go's log.Fatal: no cleanup)."""
    log.fatal(message)
    for h in logging.getLogger(corelog.ROOT).handlers:
        h.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class Loop(SyncHandler):
    name = "loop"

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.qname = f"{random.getrandbits(63)}.{random.getrandbits(63)}.{zone}".replace("..", ".")
        self.qname_wire = wire.text_to_wire(self.qname).lower()
        self.count = 0
        self.disabled = False

    def handle(self, req: Request, w: ResponseWriter) -> int:
        if req.qtype != TYPE_HINFO or self.disabled or req.qname_wire != self.qname_wire:
            return NEXT
        self.count += 1
        if self.count > 2:
            fatal_exit(f"Loop ({_addr(*req.remote)} -> {self._local(req)}) detected for zone {go_quote(self.zone)}, "
                       f"see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {self.qname}\"")
        return NEXT

    @staticmethod
    def _local(req: Request) -> str:
        lst = req.listener
        sock = None if lst is None else (lst.udp_sock if req.proto == "udp" else lst.tcp_sock)
        if sock is not None:
            try:
                host, port = sock.getsockname()[:2]
                return _addr(host, port)
            except OSError:
                pass
        return _addr(*req.local)

    # -- the self-probe ------------------------------------------------------------------------
    def probe_message(self) -> bytes:
        """miekg SetQuestion: random id, RD set, one IN HINFO question."""
        return struct.pack(">HHHHHH", random.getrandbits(16), wire.RD, 1, 0, 0, 0) + \
            self.qname_wire + struct.pack(">HH", TYPE_HINFO, 1)

    async def exchange(self, host: str, port: int) -> bool:
        """One UDP exchange with the listener; True when a reply with our id came back in time."""
        msg = self.probe_message()
        family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
        with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
            try:
                await sock.connect((host, port))
                await sock.send(msg)
                with trio.move_on_after(EXCHANGE_TIMEOUT):
                    while True:
                        data = await sock.recv(65535)
                        if data[:2] == msg[:2]:
                            return True
            except OSError:
                return False
        return False

    async def probe(self, target: Callable[[], Awaitable[tuple[str, int]]]) -> None:
        """Retry the exchange every second for 30s; disable the plugin once one completed."""
        host, port = await target()
        deadline = trio.current_time() + PROBE_FOR
        while trio.current_time() < deadline:
            if await self.exchange(host, port):
                await trio.sleep(DISABLE_AFTER)
                break
            self.count = 0
            await trio.sleep(PROBE_EVERY)
        self.disabled = True
