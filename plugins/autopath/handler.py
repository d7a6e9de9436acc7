"""autopath's handler: the search-path walk by continuation and the CNAME in front of the winner.

For a qname inside the first search element, the base name is tried with every search element (the
last is "", the bare name) against the rest of the chain; the first reply that is not NXDOMAIN goes
back with a CNAME from the asked name to the answer's owner.
"""

from __future__ import annotations

from collections.abc import Callable

from dnslib import CNAME, QTYPE, RR, DNSQuestion

from pycoredns import wire
from pycoredns.plugin import (
    PENDING,
    PluginError,
    WaitingHandler,
    client_write,
    complete,
)
from pycoredns.request import Recorder, Request, ResponseWriter
from pycoredns.util import is_subdomain, zone_match

from .metrics import success_total

SearchFunc = Callable[[Request], list[str] | None]


def trim_zone(qname: str, labels: list[bytes], zone: str) -> str:
    """dnsutil.TrimZone: the qname without the zone's labels, no trailing dot."""
    zl = len(wire.label_offsets(wire.text_to_wire(zone))) - 1
    if len(labels) - zl <= 0:
        raise ValueError(f"trimzone: overshot qname: {qname}for zone {zone}")
    return wire.labels_to_text(labels[: len(labels) - zl])[:-1]


class AutoPath(WaitingHandler):
    """Tries the search path by continuation: each candidate goes down the chain's fast path, and a
    candidate whose backend waits (forward) resumes the walk from its completion, no task."""

    name = "autopath"

    def __init__(self, zones: list[str], search: list[str], server: str) -> None:
        self.zones = zones
        self.search = search
        self.search_func: SearchFunc | None = None
        self.server = server

    def _searchpath(self, req: Request) -> list[str] | None:
        """The search list when this query is autopathed, else None."""
        if zone_match(self.zones, req.name) is None:
            return None
        path = self.search_func(req) if self.search_func is not None else self.search
        if not path or not is_subdomain(path[0], req.name):
            return None
        return path

    def start(self, req: Request, w: ResponseWriter) -> int:
        path = self._searchpath(req)
        if path is None:
            return self.next_continue(req, w)
        labels, _ = wire.read_name(req.wire, 12)
        try:
            base = trim_zone(req.qname, labels, path[0])
        except ValueError as e:
            raise PluginError(wire.SERVFAIL, str(e)) from None
        return _Walk(self, req, w, base, path).step()


class _Walk:
    """One autopathed query between its candidates (the loop CoreDNS runs on a goroutine's stack)."""

    __slots__ = ("ap", "base", "first_rc", "first_reply", "i", "path", "req", "w")

    def __init__(self, ap: AutoPath, req: Request, w: ResponseWriter, base: str, path: list[str]) -> None:
        self.ap, self.req, self.w, self.base, self.path = ap, req, w, base, path
        self.i = 0
        self.first_reply: wire.Reply | None = None
        self.first_rc = wire.NOERROR

    def step(self) -> int:
        """Try candidates from `i` until one answers or one waits (PENDING); raises a candidate's error."""
        while self.i < len(self.path):
            i = self.i
            self.i += 1
            try:
                sub = self.req.copy_with(qname=self.base + "." + self.path[i])
            except (ValueError, IndexError, wire.WireError):
                continue  # a candidate that is not a name (too long): skip it, as a failed lookup
            rec = Recorder(on_done=self._resume)
            rc = self.ap.next_continue(sub, rec)
            if rc is PENDING:
                return PENDING  # type: ignore[no-any-return]
            done = self._candidate(i, rec.reply, rc)
            if done is not None:
                return done
        if client_write(self.first_rc) and self.first_reply is not None:
            self.w.write(self.first_reply)
        return self.first_rc

    def _candidate(self, i: int, reply: wire.Reply | None, rc: int) -> int | None:
        """Note candidate `i`'s result; the rcode when it answers the query, else None (try the next)."""
        if i == 0:
            self.first_reply, self.first_rc = reply, rc
        if not client_write(rc) or reply is None or wire.rcode_of(reply) == wire.NXDOMAIN:
            return None
        req = self.req
        self.w.write(_cnamer(reply, req))
        success_total.inc(req.listener.label if req.listener is not None else self.ap.server)
        return rc

    def _resume(self, rec: Recorder) -> None:
        """A candidate that waited completed: go on with the walk, then complete the query."""
        w = self.w
        try:
            if rec.error is not None:
                raise rec.error
            assert rec.rcode is not None
            rc = self._candidate(self.i - 1, rec.reply, rec.rcode)
            if rc is None:
                rc = self.step()
                if rc is PENDING:
                    return
        except PluginError as e:
            complete(w, e.rcode, e)
            return
        except Exception as e:
            complete(w, wire.SERVFAIL, e)
            return
        complete(w, rc)


def _cnamer(reply: wire.Reply, req: Request) -> bytes:
    """CNAME original -> first answer owner that differs, placed first; the question set back."""
    try:
        rec = wire.to_record(reply)
    except Exception:  # a reply dnslib cannot read goes back as written
        return wire.to_bytes(reply)
    orig = req.qname.lower()
    for a in rec.rr:
        if str(a.rname).lower() == orig:
            continue
        rec.rr.insert(0, RR(req.qlabel, QTYPE.CNAME, 1, a.ttl, CNAME(a.rname)))
        break
    q = DNSQuestion(req.qlabel, rec.q.qtype if rec.questions else req.qtype,
                    rec.q.qclass if rec.questions else req.qclass)
    rec.questions = [q, *rec.questions[1:]]
    return bytes(rec.pack())
