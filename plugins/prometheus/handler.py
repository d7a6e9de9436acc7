"""prometheus' handler: count every query into CoreDNS's dns metrics, in batches.

The handler wraps the writer with a recorder that notes the reply's rcode and size, and labels it
with the plugin right after prometheus in the chain (CoreDNS's rule, see `Recorder`), then reports
after the chain returns. Reporting is `Recorder.after`, run once when the query completes
(returned, raised or by continuation): it appends the query's observation to a list that `flush`
folds into the metrics in batches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from time import monotonic
from typing import Any

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
        """CoreDNS's vars.Report: the same six metric updates, batched.

        Per query: the duration added to a running sum, and one tuple of the observation appended to
        a list: no label tuple, dict lookup or hash on the query's path (and no further call: this
        is the report). Every PENDING_MAX queries `_count` counts the list into a table of identical
        observations (`Counter.update`, in C); `flush` folds each distinct one into the metrics once,
        before every exposition and when the table holds more than PENDING_MAX.
        """
        m = self.metrics
        req = self.req
        rc = error.rcode if error is not None else rcode
        zone = req.zone
        qtype = req.qtype
        if qtype == TYPE_DS or zone not in m.zone_set:
            zone = zone_match(m.zones, req.name) or "."
        v = monotonic() - self.start
        listener = req.listener
        at = m.sum_at
        if at[0] is listener and at[1] is zone:  # the same listener and zone as the last query: no tuple
            m.sum += v
        else:
            m.switch_sum(listener, zone, v)
        edns = req.edns
        nxt = m.next  # the `plugin` property, inline: this runs for every query
        _OBS.append((m, listener, zone, req.proto, ":" in req.remote[0], qtype,
                     bisect_left(_DURATION_BUCKETS, v), self.size, len(req.wire),
                     rc & 0x0F if rc in NOT_WRITTEN else self.rcode,
                     nxt.name if self.written and nxt is not None else "", edns is not None and edns.do))
        if len(_OBS) >= PENDING_MAX:
            _count()
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
        # the duration sums not folded yet: the running one, (listener, zone) -> seconds for the others
        self.sum_at: tuple[Any, str] = (None, "")
        self.sum = 0.0
        self.sums: dict[tuple[Any, str], float] = {}

    def switch_sum(self, listener: Any, zone: str, v: float) -> None:
        """Another (listener, zone) than the last query's: park the running sum, start this one's."""
        self._park_sum()
        self.sum_at = (listener, zone)
        self.sum = v

    def _park_sum(self) -> None:
        if self.sum:
            at = self.sum_at
            self.sums[at] = self.sums.get(at, 0.0) + self.sum
            self.sum = 0.0

    def slot(self, listener: Any, zone: str, proto: str, v6: bool, qtype: int) -> _Slot:
        """The label tuples and histogram rows of one (listener, zone, proto, family, type label)."""
        key = (listener, zone, proto, v6, _TYPES.get(qtype, "other"))  # bounded
        slot = self.slots.get(key)
        if slot is None:
            server = listener.label if listener is not None else self.server
            slot = self.slots[key] = _Slot(server, *key[1:], view=self.view)
        return slot

    def fold_sums(self) -> None:
        """Add the duration sums to the request_duration rows (server, zone, view)."""
        self._park_sum()
        sums, self.sums = self.sums, {}
        for (listener, zone), total in sums.items():
            server = listener.label if listener is not None else self.server
            _row(metrics.request_duration, (server, zone, self.view))[-2] += total


PENDING_MAX = 1000  # observations appended before they are counted; distinct ones counted before a fold
_OBS: list[tuple] = []
_COUNTS: Counter[tuple] = Counter()


def _count() -> None:
    """Count the appended observations into the table; fold it when it holds many distinct ones."""
    _COUNTS.update(_OBS)
    _OBS.clear()
    if len(_COUNTS) > PENDING_MAX:
        flush()


def flush() -> None:
    """Fold the pending observations into the registry's counters and histograms."""
    if _OBS:
        _COUNTS.update(_OBS)
        _OBS.clear()
    if not _COUNTS:
        return
    pending = _COUNTS.copy()
    _COUNTS.clear()
    handlers = set()
    for (h, listener, zone, proto, v6, qtype, dbucket, rsize, qsize, rcode, plugin, do), n in pending.items():
        handlers.add(h)
        slot = h.slot(listener, zone, proto, v6, qtype)
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
    for h in handlers:
        h.fold_sums()


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

    __slots__ = ("do", "duration", "request_size", "requests", "response_size", "responses",
                 "server", "view", "zone")

    def __init__(self, server: str, zone: str, proto: str, v6: bool, qtype: str, view: str = "") -> None:
        self.server = server
        self.zone = zone
        self.view = view
        self.requests = (server, zone, view, proto, "2" if v6 else "1", qtype)
        self.do = (server, view, zone)
        self.duration = _row(metrics.request_duration, (server, zone, view))
        self.response_size = _row(metrics.response_size, (server, zone, view, proto))
        self.request_size = _row(metrics.request_size, (server, zone, view, proto))
        self.responses: dict[tuple[int, str], tuple[str, ...]] = {}
