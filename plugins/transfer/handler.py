"""The transfer handler: zone transfers over TCP, access by `to`, NOTIFY to the `to` addresses.

A transferer is any handler of the same block with

    def transfer(self, zone: str, serial: int) -> list[RR] | None: ...

returning the zone's records from SOA to SOA (AXFR), only the SOA when `serial` is current (the
IXFR "up to date" answer), or None when it is not authoritative for exactly `zone` (CoreDNS's
Transferer and ErrNotAuthoritative). `file` is one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import trio
from dnslib import RR, DNSBuffer, DNSRecord

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import Handler, go_quote
from pycoredns.request import Request, ResponseWriter, WriterWrapper
from pycoredns.util import zone_match

log = plugin_logger("transfer")

TYPE_AXFR, TYPE_IXFR, TYPE_SOA = wire.TYPE_AXFR, wire.TYPE_IXFR, wire.TYPE_SOA
BATCH_BYTES = 63000  # CoreDNS starts a new message when the next record would pass this
NOTIFY_TRIES = 3
NOTIFY_TIMEOUT = 2.0  # miekg's default client read timeout


@dataclass
class Xfr:
    zones: list[str]
    to: list[str] = field(default_factory=list)  # "*" or normalised host:port
    source: str | None = None

    def allowed(self, ip: str) -> bool:
        for h in self.to:
            if h == "*":
                return True
            host = h.rsplit(":", 1)[0].strip("[]")
            if host == ip:
                return True
        return False


def _rr_len(rr: RR) -> int:
    buf = DNSBuffer()
    buf.names = {}  # no compression: dns.Len without compression
    rr.pack(buf)
    return len(buf.data)


def batches(records: list[RR]) -> list[list[RR]]:
    out: list[list[RR]] = []
    cur: list[RR] = []
    size = 0
    for rr in records:
        n = _rr_len(rr)
        if cur and size + n > BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.append(rr)
        size += n
    if cur:
        out.append(cur)
    return out


def _client_writer(w: ResponseWriter) -> ResponseWriter:
    """The server's writer under the plugins' wrappers (it can send more than one message)."""
    while isinstance(w, WriterWrapper):
        w = w.inner
    return w


class Transfer(Handler):
    name = "transfer"

    def __init__(self) -> None:
        self.xfrs: list[Xfr] = []
        self.transferers: list[Handler] = []
        self._notify_send, self._notify_recv = trio.open_memory_channel[str](100)

    def longest_match(self, name: str) -> Xfr | None:
        best, zone = None, ""
        for x in self.xfrs:
            z = zone_match(x.zones, name)
            if z and (len(z) > len(zone) or (len(z) == len(zone) and z > zone)):
                best, zone = x, z
        return best

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if req.qtype not in (TYPE_AXFR, TYPE_IXFR):
            return self.next_fast(req, w)
        return self._serve(req, w, fast=True)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        if req.qtype not in (TYPE_AXFR, TYPE_IXFR):
            return await self.next_or_failure(req, w)
        rc = self._serve(req, w, fast=False)
        return await self.next_or_failure(req, w) if rc is None else rc

    def _serve(self, req: Request, w: ResponseWriter, fast: bool) -> int | None:
        """The transfer (synchronous: the records are in memory); None passes the query on."""
        if req.proto == "udp":
            return wire.REFUSED
        x = self.longest_match(req.name)
        if x is None:
            return self.next_fast(req, w) if fast else None
        if not x.allowed(req.remote[0]):
            w.write(req.reply_header(wire.REFUSED) + req.question)
            return wire.NOERROR
        serial = 0
        if req.qtype == TYPE_IXFR:
            msg = req.msg
            if len(msg.auth) != 1 or msg.auth[0].rtype != TYPE_SOA:
                return wire.SERVFAIL
            serial = msg.auth[0].rdata.times[0]
        records = None
        for p in self.transferers:
            records = p.transfer(req.name, serial)  # type: ignore[attr-defined]
            if records is not None:
                break
        if records is None:
            return self.next_fast(req, w) if fast else None
        soa = records[0] if records and records[0].rtype == TYPE_SOA else None
        if len(records) == 1 and soa is not None:
            m = req.reply_record()
            m.add_answer(soa)
            w.write(m)
            log.info(f"Outgoing noop, incremental transfer for up to date zone {go_quote(req.qname)} to "
                     f"{req.remote[0]} for {soa.rdata.times[0]} SOA serial")
            return wire.NOERROR
        base = _client_writer(w)
        more = getattr(base, "write_more", None)
        for i, batch in enumerate(batches(records)):
            m = req.reply_record()
            m.header.aa = 1
            m.rr = batch
            if i == 0:
                w.write(m)
            elif more is not None:
                more(m)
        serial_text = soa.rdata.times[0] if soa is not None else 0
        log.info(f"Outgoing transfer of {len(records)} records of zone {go_quote(req.qname)} to {req.remote[0]} "
                 f"for {serial_text} SOA serial")
        return wire.NOERROR

    # -- NOTIFY ---------------------------------------------------------------------------------
    def notify(self, zone: str) -> None:
        """Queue NOTIFYs for `zone` to its `to` addresses (sent by the background task)."""
        try:
            self._notify_send.send_nowait(zone)
        except trio.WouldBlock:
            log.warning(f"Failed sending notifies: queue full for zone {go_quote(zone)}")

    async def notifier(self) -> None:
        async for zone in self._notify_recv:
            x = self.longest_match(zone)
            if x is None:
                continue
            for target in x.to:
                if target != "*":
                    err = await send_notify(zone, target, x.source)
                    if err:
                        log.warning(f"Failed sending notifies: {err}")
            log.debug(f"Sent notifies for zone {go_quote(zone)} to {x.to}")


async def send_notify(zone: str, target: str, source: str | None) -> str | None:
    """One NOTIFY over UDP, three tries; None when acknowledged with NOERROR, else the error."""
    host, port = target.rsplit(":", 1)
    host = host.strip("[]")
    q = DNSRecord.question(zone, "SOA")
    q.header.opcode = 4
    q.header.aa = 1
    q.header.rd = 0
    data = bytes(q.pack())
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    last = "rcode was \"SERVFAIL\""
    for _ in range(NOTIFY_TRIES):
        sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        with sock:
            try:
                if source:
                    await sock.bind((source, 0))
                await sock.sendto(data, (host, int(port)))
                with trio.fail_after(NOTIFY_TIMEOUT):
                    reply, _ = await sock.recvfrom(65535)
            except (OSError, trio.TooSlowError) as e:
                last = go_quote(str(e) or "i/o timeout")
                continue
        if len(reply) >= 4 and struct.unpack(">H", reply[:2])[0] == q.header.id:
            rc = reply[3] & 0xF
            if rc == 0:
                return None
            last = f"rcode was {go_quote(wire.RCODE_NAMES.get(rc, str(rc)))}"
    return f"notify for zone {go_quote(zone)} was not accepted by {go_quote(target)}: {last}"
