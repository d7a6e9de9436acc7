"""prometheus' handler: count every query into CoreDNS's dns metrics, in batches.

The handler wraps the writer with a recorder that notes the reply's rcode and size, and labels it
with the plugin right after prometheus in the chain (CoreDNS's rule, see `Recorder`), then reports
after the chain returns. Reporting is
`Recorder.after`, run once when the query completes (returned, raised or by continuation).
"""

from __future__ import annotations

from bisect import bisect_left
from time import monotonic

from pycoredns import metrics, wire
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import NOT_WRITTEN, PluginError, Request, ResponseWriter, Wrapper, WrapperHandler
from pycoredns.util import zone_match
from pycoredns.wire import Reply

TYPE_DS = wire.TYPE_DS

_RCODES = [wire.RCODE_NAMES.get(i, str(i)) for i in range(16)]
_TYPES = metrics.MONITORED_TYPES


# -- who wrote the reply ---------------------------------------------------------------------------


class Recorder(Wrapper):
    """Notes rcode, size and author of the reply; hands bytes on (the server would pack anyway), and
    reports when the query completes (either path, or by continuation).

    The author is CoreDNS's rule (plugin.NextOrFailure's pluginWriter): only the writer handed to the
    plugin right after prometheus reports to the recorder, so every written reply is labelled with that
    plugin's name (`errors` in kubeadm's chain), whichever plugin further down wrote it; "" when
    nothing was written (the server writes the rcode).
    """

    __slots__ = ("metrics", "rcode", "req", "size", "start")

    def __init__(self, inner: ResponseWriter, metrics: Metrics, req: Request) -> None:
        self.inner = inner
        self.written = False
        self.rcode = 0
        self.size = 0
        self.metrics = metrics
        self.req = req
        self.start = monotonic()

    @property
    def plugin(self) -> str:
        """The plugin label: the plugin after prometheus when a reply was written, else ""."""
        nxt = self.metrics.next
        return nxt.name if self.written and nxt is not None else ""

    def write(self, reply: Reply) -> None:
        if type(reply) is bytes:
            data = reply
        elif isinstance(reply, (bytes, bytearray)):
            data = bytes(reply)
        else:
            data = bytes(reply.pack())
        self.written = True
        self.size += len(data)
        if len(data) >= 4:
            self.rcode = data[3] & 0x0F
        self.inner.write(data)

    def after(self, rcode: int, error: PluginError | None) -> int:
        self.metrics.report(self.req, self, error.rcode if error is not None else rcode, self.start)
        if error is not None:
            raise error
        return rcode


# -- the handler -----------------------------------------------------------------------------------


class Metrics(WrapperHandler):
    name = "prometheus"
    writer = Recorder  # every query, unchanged: no `wrap` call

    def __init__(self, zones: list[str], server: str) -> None:
        self.zones = zones
        self.zone_set = frozenset(zones)
        self.server = server
        self.view = ""  # the block's `view` name (the `view` label), set at startup
        self.slots: dict[tuple, _Slot] = {}

    def report(self, req: Request, rec: Recorder, rc: int, start: float) -> None:
        """CoreDNS's vars.Report: the same six metric updates, batched.

        Label tuples and histogram rows are looked up once per (listener, zone, proto, family,
        type label) and kept in `self.slots`; a query then costs one dict hit, the duration's
        bucket search and one count of identical observations (folded in by `flush`).
        """
        zone = req.zone
        qtype = req.qtype
        if qtype == TYPE_DS or zone not in self.zone_set:
            zone = zone_match(self.zones, req.name) or "."
        key = (req.listener, zone, req.proto, ":" in req.remote[0], _TYPES.get(qtype, "other"))  # bounded
        slot = self.slots.get(key)
        if slot is None:
            listener = req.listener
            server = listener.label if listener is not None else self.server
            slot = self.slots[key] = _Slot(server, *key[1:], view=self.view)
        # The six metric updates of CoreDNS's vars.Report are folded into the metrics in batches
        # (`flush`, before every exposition and whenever many distinct queries are pending): per
        # query only the duration sum and one count of identical observations.
        v = monotonic() - start
        slot.duration_sum += v
        edns = req.edns
        rcode = rc & 0x0F if rc in NOT_WRITTEN else rec.rcode
        nxt = self.next  # Recorder.plugin, inline: this runs for every query
        plugin = nxt.name if rec.written and nxt is not None else ""
        obs = (slot, bisect_left(_DURATION_BUCKETS, v), rec.size, len(req.wire), rcode, plugin,
               edns is not None and edns.do)
        pending = _PENDING
        pending[obs] = pending.get(obs, 0) + 1
        if len(pending) > PENDING_MAX:
            flush()


PENDING_MAX = 1000
_PENDING: dict[tuple, int] = {}


def flush() -> None:
    """Fold the pending observations into the registry's counters and histograms."""
    pending = _PENDING.copy()
    _PENDING.clear()
    slots = set()
    for (slot, dbucket, rsize, qsize, rcode, plugin, do), n in pending.items():
        slots.add(slot)
        _REQUESTS[slot.requests] = _REQUESTS.get(slot.requests, 0.0) + n
        if do:
            _DO[slot.do] = _DO.get(slot.do, 0.0) + n
        row = slot.duration
        if dbucket < _N_DURATION:
            row[dbucket] += n
        row[-1] += n
        for row, size in ((slot.response_size, rsize), (slot.request_size, qsize)):
            i = bisect_left(_SIZE_BUCKETS, size)
            if i < _N_SIZE:
                row[i] += n
            row[-2] += size * n
            row[-1] += n
        rkey = (rcode, plugin)
        labels = slot.responses.get(rkey)
        if labels is None:
            labels = slot.responses[rkey] = (slot.server, slot.zone, slot.view, _RCODES[rcode], plugin)
        _RESPONSES[labels] = _RESPONSES.get(labels, 0.0) + n
    for slot in slots:
        slot.duration[-2] += slot.duration_sum
        slot.duration_sum = 0.0


if flush not in REGISTRY.collectors:
    REGISTRY.collectors.append(flush)  # every exposition (and any reader of REGISTRY.expose) sees all queries


_REQUESTS = metrics.requests_total.values
_DO = metrics.do_requests_total.values
_RESPONSES = metrics.responses_total.values
_DURATION_BUCKETS = metrics.request_duration.buckets
_SIZE_BUCKETS = metrics.request_size.buckets
_N_DURATION = len(_DURATION_BUCKETS)
_N_SIZE = len(_SIZE_BUCKETS)


def _row(h: metrics.Histogram, labels: tuple[str, ...]) -> list[float]:
    row = h.values.get(labels)
    if row is None:
        row = h.values[labels] = [0.0] * (len(h.buckets) + 2)
    return row


class _Slot:
    """Label tuples and histogram rows of one (server, zone, proto, family, type label)."""

    __slots__ = ("do", "duration", "duration_sum", "request_size", "requests", "response_size", "responses",
                 "server", "view", "zone")

    def __init__(self, server: str, zone: str, proto: str, v6: bool, qtype: str, view: str = "") -> None:
        self.server = server
        self.zone = zone
        self.duration_sum = 0.0
        self.view = view
        self.requests = (server, zone, view, proto, "2" if v6 else "1", qtype)
        self.do = (server, view, zone)
        self.duration = _row(metrics.request_duration, (server, zone, view))
        self.response_size = _row(metrics.response_size, (server, zone, view, proto))
        self.request_size = _row(metrics.request_size, (server, zone, view, proto))
        self.responses: dict[tuple[int, str], tuple[str, ...]] = {}
