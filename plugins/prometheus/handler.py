"""prometheus' handler: count every query into CoreDNS's dns metrics, in batches.

The handler observes how each query ended (`ObserverHandler`: no writer object per query on the
server's own writer): the rcode and size of the reply written below it, labelled with the plugin
right after prometheus in the chain (CoreDNS's rule, see `Metrics`). `Metrics.observe` runs once
when the query completes (returned, raised or by continuation): it appends the query's observation
to a list that `flush` folds into the metrics in batches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from time import monotonic
from typing import Any

from pycoredns import metrics, wire
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import NOT_WRITTEN, ObserverHandler, PluginError, Request, ResponseWriter
from pycoredns.util import zone_match

TYPE_DS = wire.TYPE_DS

_RCODES = [wire.RCODE_NAMES.get(i, str(i)) for i in range(16)]
_TYPES = metrics.MONITORED_TYPES


# -- the handler -----------------------------------------------------------------------------------


class Metrics(ObserverHandler):
    """Counts every query when it completes (either path, or by continuation): an observer, so no
    writer of its own per query (`ObserverHandler`; `w.reply` is the reply written below).

    The `plugin` label is CoreDNS's rule (plugin.NextOrFailure's pluginWriter): only the writer handed
    to the plugin right after prometheus reports to the recorder, so every written reply is labelled
    with that plugin's name (`errors` in kubeadm's chain), whichever plugin further down wrote it; ""
    when nothing was written (the server writes the rcode).
    """

    name = "prometheus"
    clock = monotonic  # `started`: the duration runs from here to the completion

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

    def observe(self, req: Request, w: ResponseWriter, rcode: int, error: PluginError | None,
                started: Any) -> int:
        """CoreDNS's vars.Report: the same six metric updates, batched.

        Per query: the duration added to a running sum, and one tuple of the observation appended to
        a list: no label tuple, dict lookup or hash on the query's path. Every PENDING_MAX queries
        `_count` counts the list into a table of identical observations (`Counter.update`, in C);
        `flush` folds each distinct one into the metrics once, before every exposition and when the
        table holds more than PENDING_MAX.
        """
        rc = error.rcode if error is not None else rcode
        zone = req.zone
        qtype = req.qtype
        if qtype == TYPE_DS or zone not in self.zone_set:
            zone = zone_match(self.zones, req.name) or "."
        v = monotonic() - started
        listener = req.listener
        at = self.sum_at
        if at[0] is listener and at[1] is zone:  # the same listener and zone as the last query: no tuple
            self.sum += v
        else:
            self.switch_sum(listener, zone, v)
        if w.written:  # the size of what was written (all of it), the rcode of its (last) header
            reply: bytes = w.reply  # type: ignore[attr-defined]
            size = len(reply)
            wrote = reply[3] & 0x0F if size >= 4 else 0
            nxt = self.next
            plugin = nxt.name if nxt is not None else ""
        else:
            size = wrote = 0
            plugin = ""
        edns = req.edns
        _OBS.append((self, listener, zone, req.proto, ":" in req.remote[0], qtype,
                     0 if v <= _FIRST_BUCKET else bisect_left(_DURATION_BUCKETS, v), size, len(req.wire),
                     rc & 0x0F if rc in NOT_WRITTEN else wrote, plugin, edns is not None and edns.do))
        if len(_OBS) >= PENDING_MAX:
            _count()
        if error is not None:
            raise error
        return rcode

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
_FIRST_BUCKET = _DURATION_BUCKETS[0]  # a query answered from memory takes less: no bisect_left call
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
