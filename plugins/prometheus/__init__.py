"""prometheus: count every query and serve `/metrics` in the Prometheus text format (CoreDNS `metrics`).

The handler wraps the writer with a recorder that notes the reply's rcode and size, and labels it
with the plugin right after prometheus in the chain (CoreDNS's rule, see `Recorder`), then reports
after the chain returns. Reporting is
`Recorder.after`, run once when the query completes (returned, raised or by continuation).
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import time
from bisect import bisect_left
from collections.abc import Callable
from time import monotonic
from typing import Any

from pycoredns import COREDNS_VERSION, __version__, metrics, wire
from pycoredns.log import plugin_logger
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import NOT_WRITTEN, Controller, PluginError, Request, ResponseWriter, Wrapper, WrapperHandler
from pycoredns.util import zone_match
from pycoredns.wire import Reply

log = plugin_logger("prometheus")
DEFAULT_ADDRESS = "localhost:9153"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TYPE_DS = wire.TYPE_DS

build_info = REGISTRY.gauge(
    "coredns_build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
    ("version", "revision", "goversion"))

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

    def __init__(self, zones: list[str], server: str) -> None:
        self.zones = zones
        self.zone_set = frozenset(zones)
        self.server = server
        self.view = ""  # the block's `view` name (the `view` label), set at startup
        self.slots: dict[tuple, _Slot] = {}

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Recorder]:
        return req, Recorder(w, self, req)

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
        obs = (slot, bisect_left(_DURATION_BUCKETS, v), rec.size, len(req.wire), rcode, rec.plugin,
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


# -- process metrics, read from /proc at scrape time -------------------------------------------------


class CounterFunc(metrics.GaugeFunc):
    kind = "counter"


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _statm() -> list[int]:
    try:
        with open("/proc/self/statm") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return [0, 0]


def _start_time() -> float:
    """Process start (unix seconds): boot time + starttime ticks of /proc/self/stat."""
    try:
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return _FALLBACK_START


_FALLBACK_START = time.time()


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _sample(fn: Callable[[], float]) -> list[tuple[tuple[str, ...], float]]:
    return [((), float(fn()))]


def _register_process_metrics() -> None:
    start = _start_time()
    gauges = (
        ("process_resident_memory_bytes", "Resident memory size in bytes.", lambda: _statm()[1] * _PAGE),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", lambda: _statm()[0] * _PAGE),
        ("process_open_fds", "Number of open file descriptors.", _open_fds),
        ("process_max_fds", "Maximum number of open file descriptors.",
         lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", lambda: start),
    )
    for name, help_text, fn in gauges:
        REGISTRY.gauge_func(name, help_text, functools.partial(_sample, fn))
    cpu = CounterFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                      lambda: [((), sum(os.times()[:2]))])
    REGISTRY.register(cpu)


def expose(method: str, target: str) -> tuple[int, str, bytes]:
    """GET /metrics. A failing collector (another plugin's gauge function) gives a 500, not a crash."""
    try:
        return 200, CONTENT_TYPE, REGISTRY.expose().encode()
    except Exception as e:
        log.error(f"cannot collect metrics: {type(e).__name__}: {e}")
        return 500, "text/plain; charset=utf-8", f"An error has occurred while serving metrics:\n\n{e}\n".encode()


# -- setup -----------------------------------------------------------------------------------------


def _view_name(block) -> str:
    """The block's `view` name (the `view` plugin leaves its handler in the block's extra settings)."""
    view = block.extra.get("view")
    return getattr(view, "view_name", "") if view is not None else ""


def _enabled_labels(block) -> list[tuple[str, str, str, str]]:
    """coredns_plugin_enabled label sets of a block: each listener address x zone x chain handler."""
    out = []
    for a in block.addresses:
        for h in block.listen_hosts:
            host = f"[{h}]" if ":" in h else h
            for handler in block.handlers:
                out.append((f"{a.transport}://{host}:{a.port}", a.zone, _view_name(block), handler.name))
    return out


def setup(c: Controller) -> None:
    addr = DEFAULT_ADDRESS
    for _ in c.occurrences(once=True):
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() == "tls":
                raise c.err("tls is not supported by pycoredns")
            raise c.errf("unknown option: %s", c.val())
    build_info.set(COREDNS_VERSION, f"pycoredns-{__version__}", f"python{platform.python_version()}", value=1)
    _register_process_metrics()
    state: dict[str, Any] = c.config_state("prometheus", lambda: {"addrs": set(), "blocks": []})
    if addr not in state["addrs"]:
        state["addrs"].add(addr)
        c.http_route(addr, "/metrics", expose)
    if not state["blocks"]:

        async def publish_enabled() -> None:
            # CoreDNS resets the gauge on restart and each block with prometheus sets its own.
            metrics.plugin_enabled.values.clear()
            for block in state["blocks"]:
                for labels in _enabled_labels(block):
                    metrics.plugin_enabled.set(*labels, value=1)

        c.on_startup(publish_enabled)
    state["blocks"].append(c.block)
    handler = Metrics(list(c.zones), c.server_label())
    block = c.block

    async def set_view() -> None:  # `view` is set up after prometheus (plugin.cfg order)
        handler.view = _view_name(block)

    c.on_startup(set_view)
    c.add_handler(handler)
