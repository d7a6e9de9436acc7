"""The file handler: authoritative answers from zones read from master files, reloaded on change."""

from __future__ import annotations

import os
from functools import partial

import trio
from dnslib import RR

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import Handler, await_pending, go_quote, self_lookup
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import Fallthrough, zone_match
from pycoredns.wire import Reply, ReplyMemo

from .zone import External, Result, Sections, SerialUnchanged, Zone

log = plugin_logger("file")

TYPE_AXFR, TYPE_IXFR = wire.TYPE_AXFR, wire.TYPE_IXFR
OPCODE_NOTIFY = wire.OPCODE_NOTIFY


class ZoneSlot:
    """A zone's current data (swapped whole on reload) and how it is reloaded."""

    def __init__(self, origin: str, path: str) -> None:
        self.origin = origin
        self.path = path
        self.zone: Zone | None = None
        self.memo = ReplyMemo()  # whole replies of this zone's data: replaced with the zone
        self.reload = 60.0
        self.by_mtime = False

    async def reload_loop(self, notify) -> None:
        """CoreDNS's Reload: every interval, re-read when the SOA serial (or the mtime) changed.

        The file is read in a worker thread, so a large zone does not stop the server answering."""
        if self.reload <= 0:
            return
        while True:
            await trio.sleep(self.reload)
            z = await trio.to_thread.run_sync(self.load_if_changed)
            if z is not None:
                self.swap(z, notify)

    def load_if_changed(self) -> Zone | None:
        """The zone read again when it changed; None when it did not or cannot be read (logged)."""
        current = self.zone
        serial = current.serial if current is not None else -1
        if self.by_mtime:
            try:
                mtime = os.stat(self.path).st_mtime
            except OSError as e:
                log.error(f"Failed to stat zone {go_quote(self.origin)} in {go_quote(self.path)}: {e}")
                return None
            if current is not None and mtime <= current.mtime:
                return None
            serial = 0  # CoreDNS forces the reload this way
        try:
            return Zone.load(self.origin, self.path, serial)
        except SerialUnchanged:
            return None
        except OSError as e:
            log.error(f"Failed to open zone {go_quote(self.origin)} in {go_quote(self.path)}: {e}")
        except ValueError as e:
            log.error(f"Parsing zone {go_quote(self.origin)}: {e}")
        return None

    def swap(self, z: Zone, notify=None) -> None:
        self.zone, self.memo = z, ReplyMemo()
        log.info(f"Successfully reloaded zone {go_quote(self.origin)} in {go_quote(self.path)} "
                 f"with {z.serial} SOA serial")
        if notify is not None:
            notify(self.origin)


def _memo_question(req: Request) -> bytes:
    """The memo key's question: with DO the reply carries signatures, so DO is part of the key."""
    return req.question + b"\x01" if req.do else req.question


class File(Handler):
    name = "file"

    def __init__(self, slots: dict[str, ZoneSlot], fall: Fallthrough) -> None:
        self.slots = slots
        self.names = list(slots)
        self.fall = fall

    # -- transfer's interface ---------------------------------------------------------------
    def transfer(self, zone: str, serial: int) -> list[RR] | None:
        """Records of `zone` for AXFR (SOA ... SOA), just the SOA when `serial` is current (IXFR);
        None when this plugin is not authoritative for exactly `zone`."""
        slot = self.slots.get(zone)
        if slot is None or slot.zone is None or slot.zone.soa is None:
            return None
        z = slot.zone
        if serial and z.serial == serial:
            return [z.soa]
        return [*z.records(), z.soa]

    def serial(self, zone: str) -> int | None:
        slot = self.slots.get(zone)
        return slot.zone.serial if slot is not None and slot.zone is not None else None

    # -- queries ------------------------------------------------------------------------------
    def _slot(self, req: Request) -> ZoneSlot | None:
        origin = zone_match(self.names, req.name)
        return None if origin is None else self.slots[origin]

    def _start(self, req: Request, slot: ZoneSlot) -> tuple[Zone, Sections | External] | int | None:
        """(zone, lookup result), or an rcode the server writes, or None to pass on to the next plugin."""
        origin = slot.origin
        z = slot.zone
        if z is None:
            return wire.SERVFAIL
        if req.qtype in (TYPE_AXFR, TYPE_IXFR):
            return wire.REFUSED
        if (req.flags >> 11) & 0xF == OPCODE_NOTIFY:
            log.info(f"Dropping notify from {req.remote[0]} for {origin}")
            return wire.NOERROR
        seen: list[str] = []
        res = z.lookup(req.name, req.qtype, seen, req.do)
        if seen and req.meta is not None:
            req.meta["zone/wildcard"] = seen[0]
        return z, res

    def _write(self, req: Request, w: ResponseWriter, sections: Sections, memo: ReplyMemo | None) -> int | None:
        """Write the reply (memoised when `memo` is given: it depends only on the zone); None: fall through."""
        answer, ns, extra, result = sections
        if not answer and result in (Result.NAME_ERROR, Result.SUCCESS) and self.fall.through(req.name):
            return None  # fall through
        m = req.reply_record()
        m.header.aa = 1
        if result == Result.NAME_ERROR:
            m.header.rcode = wire.NXDOMAIN
        elif result == Result.DELEGATION and not answer:
            m.header.aa = 0
        elif result == Result.SERVER_FAILURE:
            if not answer:
                return wire.SERVFAIL
            m.header.rcode = wire.SERVFAIL
        m.rr, m.auth, m.ar = list(answer), list(ns), list(extra)
        data = bytes(m.pack())
        if memo is not None:
            memo.put(req.flags, _memo_question(req), data)
        w.write(data)
        return wire.NOERROR

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        slot = self._slot(req)
        if slot is None:
            return self.next_fast(req, w)
        if req.meta is None:  # with metadata a wildcard answer also sets zone/wildcard: no memo
            hit = slot.memo.get(req.flags, _memo_question(req), req.id)
            if hit is not None:
                w.write(hit)
                return wire.NOERROR
        started = self._start(req, slot)
        if not isinstance(started, tuple):
            return self.next_fast(req, w) if started is None else started
        z, res = started
        if isinstance(res, External):
            return self._external(req, w, z, res)
        rc = self._write(req, w, res, slot.memo if req.meta is None else None)
        return self.next_fast(req, w) if rc is None else rc

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        slot = self._slot(req)
        if slot is None:
            return await self.next_or_failure(req, w)
        started = self._start(req, slot)
        if not isinstance(started, tuple):
            return await self.next_or_failure(req, w) if started is None else started
        z, res = started
        if isinstance(res, External):
            return await await_pending(partial(self._external, z=z, ext=res), req, w)
        rc = self._write(req, w, res, slot.memo if req.meta is None else None)
        return await self.next_or_failure(req, w) if rc is None else rc

    def _external(self, req: Request, w: ResponseWriter, z: Zone, ext: External) -> int:
        """A CNAME chain left the zone: CoreDNS's doLookup of the target through this server's own
        chains, by continuation (`self_lookup`: no task waits). The rcode, or PENDING."""
        return self_lookup(req.copy_with(qname=ext.target), w, partial(self._external_reply, req, w, z, ext))

    def _external_reply(self, req: Request, w: ResponseWriter, z: Zone, ext: External, reply: Reply | None) -> int:
        """The target's reply arrived: the zone's answer with its records (never memoised: it depends on
        other chains); falling through passes the query on."""
        rc = self._write(req, w, z.finish(ext, *_looked_up(reply)), None)
        return self.next_continue(req, w) if rc is None else rc


def _looked_up(reply: Reply | None) -> tuple[list[RR], Result]:
    """CoreDNS's doLookup result: the answer records and what they mean (None: no server to ask)."""
    if reply is None:
        return [], Result.SUCCESS
    m = wire.to_record(reply)
    rcode = m.header.rcode
    if rcode == wire.NXDOMAIN:
        return list(m.rr), Result.NAME_ERROR
    if rcode == wire.SERVFAIL:
        return list(m.rr), Result.SERVER_FAILURE
    if rcode == wire.NOERROR and not m.rr:
        return [], Result.NO_DATA
    return list(m.rr), Result.SUCCESS
