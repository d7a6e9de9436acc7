"""autopath: follow the client's search path on the server (CoreDNS `autopath`, reference §3.17).

`autopath [ZONE...] RESOLV-CONF|@PLUGIN`. For a qname inside the first search element, the base
name is tried with every search element (the last is "", the bare name) against the rest of the
chain; the first reply that is not NXDOMAIN goes back with a CNAME from the asked name to the
answer's owner. With `@kubernetes` the search list comes per client from the kubernetes handler
of the same block (`autopath_search(req)`).
"""

from __future__ import annotations

from collections.abc import Callable

from dnslib import CNAME, QTYPE, RR, DNSQuestion

from pycoredns import metrics, wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import (
    PENDING,
    ConfigError,
    Controller,
    PluginError,
    WaitingHandler,
    client_write,
    complete,
)
from pycoredns.request import Recorder, Request, ResponseWriter
from pycoredns.util import is_subdomain, zone_match

log = plugin_logger("autopath")
success_total = metrics.REGISTRY.counter(
    "coredns_autopath_success_total", "Counter of requests that did autopath.", ("server",))

SearchFunc = Callable[[Request], list[str] | None]


def parse_resolv_conf(path: str) -> list[str]:
    """The search list of a resolv.conf as miekg's ClientConfigFromFile reads it (last line wins)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"failed to parse {_q(path)}: open {path}: {reason.lower()}") from None
    search: list[str] = []
    for line in text.splitlines():
        f = line.split()
        if not f or f[0][0] in "#;":
            continue
        if f[0] == "domain":
            search = f[1:2]
        elif f[0] == "search":
            search = f[1:]
    return [(s if s.endswith(".") else s + ".").lower() for s in search]


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def setup(c: Controller) -> None:
    zones: list[str] = []
    search: list[str] = []
    plugin = ""
    for _ in c.occurrences():
        args = c.remaining_args()
        if not args:
            raise ConfigError("no resolv-conf specified")
        resolv = args[-1]
        if resolv.startswith("@"):
            plugin = resolv[1:]
        else:
            search = [*parse_resolv_conf(resolv), ""]  # relative to the working directory, as CoreDNS
        zones = c.zones_from(args[:-1])
    ap = AutoPath(zones, search, c.server_label())
    c.add_handler(ap)
    if plugin:
        block = c.block

        async def attach() -> None:
            """After the chains exist: take the search function of the named plugin in this block."""
            h = next((h for h in block.handlers if h.name == plugin), None)
            if h is None:
                return
            fn = getattr(h, "autopath_search", None)
            if fn is None:
                log.error(f"{plugin} plugin does not support autopath")
                return
            ap.search_func = fn

        c.on_startup(attach)
