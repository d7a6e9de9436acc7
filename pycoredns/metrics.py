"""A small Prometheus registry: counters, gauges and histograms with labels, and text exposition.

Kept in-process and lock-free (trio runs plugins in one thread) so that counting on the per-query
path costs a dict lookup and an add. The `prometheus` plugin serves `REGISTRY` over HTTP; the
other plugins define their metrics here with CoreDNS's names.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast


def _fmt(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    """`{a="1",b="2"}` with labels sorted by name, as Prometheus's Go client writes them (`le` last)."""
    parts = [f'{n}="{_escape(str(v))}"' for n, v in sorted(zip(names, values, strict=True))]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)

    def samples(self) -> Iterable[str]:  # pragma: no cover - interface
        return ()

    def expose(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(self.samples())
        return "\n".join(lines) + "\n"

    def values_now(self) -> Mapping[tuple[str, ...], float | list[float]]:  # pragma: no cover - interface
        return {}

    def snapshot(self) -> dict[str, Any]:
        """This metric's state as plain data (JSON-able), for merging the workers of a pod."""
        return {"kind": self.kind, "help": self.help, "labels": list(self.label_names),
                "samples": [[list(lv), v] for lv, v in self.values_now().items()]}


class Counter(Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Iterable[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        v = self.values
        v[labels] = v.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def remove(self, *labels: str) -> None:
        self.values.pop(labels, None)

    def values_now(self) -> dict[tuple[str, ...], float]:
        return self.values

    def samples(self) -> Iterable[str]:
        if not self.label_names and not self.values:
            # A metric without labels exists from registration on (client_golang): `coredns_panics_total 0`.
            yield f"{self.name} 0"
            return
        for lv, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, lv)} {_fmt(v)}"


class Gauge(Counter):
    kind = "gauge"

    def set(self, *labels: str, value: float) -> None:
        self.values[labels] = value


class GaugeFunc(Metric):
    """A gauge read at scrape time (cache entries, process memory)."""

    kind = "gauge"

    def __init__(self, name: str, help: str, fn: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
                 labels: Iterable[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.fn = fn

    def samples(self) -> Iterable[str]:
        for lv, v in self.fn():
            yield f"{self.name}{_labels(self.label_names, lv)} {_fmt(v)}"

    def values_now(self) -> dict[tuple[str, ...], float]:
        return {tuple(lv): v for lv, v in self.fn()}


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Iterable[float], labels: Iterable[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.buckets = sorted(buckets)
        # per label set: [bucket counts..., sum, count]
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, *labels: str) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            row[i] += 1
        row[-2] += value
        row[-1] += 1

    def count(self, *labels: str) -> float:
        row = self.values.get(labels)
        return row[-1] if row else 0.0

    def values_now(self) -> dict[tuple[str, ...], list[float]]:
        return self.values

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "buckets": self.buckets}

    def samples(self) -> Iterable[str]:
        for lv, row in sorted(self.values.items()):
            acc = 0.0
            for b, c in zip(self.buckets, row, strict=False):
                acc += c
                le = 'le="' + _fmt(b) + '"'
                yield f"{self.name}_bucket{_labels(self.label_names, lv, le)} {_fmt(acc)}"
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.label_names, lv, inf)} {_fmt(row[-1])}"
            yield f"{self.name}_sum{_labels(self.label_names, lv)} {_fmt(row[-2])}"
            yield f"{self.name}_count{_labels(self.label_names, lv)} {_fmt(row[-1])}"


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    return [start * factor**i for i in range(count)]


class Registry:
    """Metrics by name; registering an existing name returns the existing metric (reload-safe)."""

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self.collectors: list[Callable[[], None]] = []  # run before each exposition (batched updates)

    def register(self, metric: Metric) -> Metric:
        return self.metrics.setdefault(metric.name, metric)

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        return self.register(Counter(name, help, labels))  # type: ignore[return-value]

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        return self.register(Gauge(name, help, labels))  # type: ignore[return-value]

    def gauge_func(self, name: str, help: str, fn: Callable[[], Any], labels: Iterable[str] = ()) -> GaugeFunc:
        m = self.register(GaugeFunc(name, help, fn, labels))
        m.fn = fn  # type: ignore[attr-defined]  # the newest configuration's view wins
        return m  # type: ignore[return-value]

    def histogram(self, name: str, help: str, buckets: Iterable[float], labels: Iterable[str] = ()) -> Histogram:
        return self.register(Histogram(name, help, buckets, labels))  # type: ignore[return-value]

    def expose(self) -> str:
        for collect in self.collectors:
            collect()
        return "".join(m.expose() for _, m in sorted(self.metrics.items()))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every metric as plain data (`Metric.snapshot`); `merge` turns N of them into one exposition."""
        for collect in self.collectors:
            collect()
        return {name: m.snapshot() for name, m in self.metrics.items()}


# -- one pod, one view: the metrics of N workers as one exposition --------------------------------------

GAUGE_MODES: dict[str, str] = {
    # the same in every worker (configuration, build): one value
    "coredns_build_info": "max", "coredns_plugin_enabled": "max", "coredns_reload_version_info": "max",
    "coredns_hosts_entries": "max", "coredns_hosts_reload_timestamp_seconds": "max",
    "pycoredns_lastgood_active": "max", "pycoredns_lastgood_info": "max",
    # per-process limits and alerts: the worst worker
    "process_max_fds": "max", "process_open_fds": "max",
    # the pod's total
    "coredns_cache_entries": "sum", "process_resident_memory_bytes": "sum", "process_virtual_memory_bytes": "sum",
    # uptime is the oldest worker's
    "process_start_time_seconds": "min",
}
"""How a gauge of N workers becomes one (the modes of Prometheus's Python client in multiprocess
mode): `sum`, `max`, `min`, or `all` (one series per worker, labelled `worker="<index>"`, the
default for a gauge not listed). Counters and histograms are always summed."""
DEFAULT_GAUGE_MODE = "all"
_COMBINE: dict[str, Callable[[list[float]], float]] = {"sum": sum, "max": max, "min": min}


def merge(snapshots: list[dict[str, dict[str, Any]] | None]) -> str:
    """One text exposition from the registries of the workers (`Registry.snapshot`, index = worker
    number; None for a worker that did not answer)."""
    merged: dict[str, Metric] = {}
    for worker, snap in enumerate(snapshots):
        for name, data in (snap or {}).items():
            _merge_into(merged, name, data, str(worker))
    for name, m in merged.items():
        if isinstance(m, Gauge) and (mode := GAUGE_MODES.get(name, DEFAULT_GAUGE_MODE)) != "all":
            m.values = {lv: _COMBINE[mode](cast("list[float]", vs)) for lv, vs in m.values.items()}
    return "".join(m.expose() for _, m in sorted(merged.items()))


def fold(total: dict[str, dict[str, Any]], snap: dict[str, dict[str, Any]]) -> None:
    """Add the counters and histograms of `snap` into `total` (both `Registry.snapshot` data): what a
    pod keeps of its workers that exited, so its totals never go down (gauges leave with a worker)."""
    for name, data in snap.items():
        if data["kind"] not in ("counter", "histogram"):
            continue
        kept = total.setdefault(name, {**data, "samples": []})
        rows: dict[tuple[str, ...], Any] = {tuple(lv): v for lv, v in kept["samples"]}
        for lv, v in data["samples"]:
            old = rows.get(tuple(lv))
            if old is None:
                rows[tuple(lv)] = v
            elif isinstance(v, list):
                if len(v) == len(old):  # same buckets
                    rows[tuple(lv)] = [a + b for a, b in zip(old, v, strict=True)]
            else:
                rows[tuple(lv)] = old + v
        kept["samples"] = [[list(lv), v] for lv, v in rows.items()]


def _merge_into(merged: dict[str, Metric], name: str, data: dict[str, Any], worker: str) -> None:
    kind, labels, samples = data["kind"], tuple(data["labels"]), data["samples"]
    m = merged.get(name)
    if m is None:
        if kind == "histogram":
            m = Histogram(name, data["help"], data["buckets"], labels)
        elif kind == "counter":
            m = Counter(name, data["help"], labels)
        else:
            per_worker = GAUGE_MODES.get(name, DEFAULT_GAUGE_MODE) == "all"
            m = Gauge(name, data["help"], (*labels, "worker") if per_worker else labels)
        merged[name] = m
    if isinstance(m, Histogram):
        for lv, row in samples:
            acc = m.values.setdefault(tuple(lv), [0.0] * len(row))
            if len(acc) == len(row):  # same buckets (a worker mid-upgrade might differ: skip it)
                m.values[tuple(lv)] = [a + b for a, b in zip(acc, row, strict=True)]
    elif isinstance(m, Gauge):
        for lv, v in samples:
            if len(m.label_names) > len(lv):
                m.values[(*lv, worker)] = v
            else:
                lists = cast("dict[tuple[str, ...], list[float]]", m.values)  # combined in merge
                lists.setdefault(tuple(lv), []).append(v)
    else:
        counter = cast(Counter, m).values
        for lv, v in samples:
            counter[tuple(lv)] = counter.get(tuple(lv), 0.0) + v


REGISTRY = Registry()
"""The process-wide registry (CoreDNS uses the global Prometheus registry the same way)."""

# Core DNS metrics reported by the server and the prometheus plugin (names, labels, buckets as CoreDNS).
DURATION_BUCKETS = exponential_buckets(0.00025, 2, 16)
SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3]

requests_total = REGISTRY.counter(
    "coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
    ("server", "zone", "view", "proto", "family", "type"))
request_duration = REGISTRY.histogram(
    "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took per zone.",
    DURATION_BUCKETS, ("server", "zone", "view"))
request_size = REGISTRY.histogram(
    "coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    SIZE_BUCKETS, ("server", "zone", "view", "proto"))
response_size = REGISTRY.histogram(
    "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
    SIZE_BUCKETS, ("server", "zone", "view", "proto"))
do_requests_total = REGISTRY.counter(
    "coredns_dns_do_requests_total", "Counter of DNS requests with DO bit set per zone.",
    ("server", "view", "zone"))
responses_total = REGISTRY.counter(
    "coredns_dns_responses_total", "Counter of response status codes.",
    ("server", "zone", "view", "rcode", "plugin"))
panics_total = REGISTRY.counter("coredns_panics_total", "A metrics that counts the number of panics.")
plugin_enabled = REGISTRY.gauge(
    "coredns_plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ("server", "zone", "view", "name"))

MONITORED_TYPES = {1: "A", 28: "AAAA", 15: "MX", 6: "SOA", 5: "CNAME", 12: "PTR", 16: "TXT", 2: "NS",
                   33: "SRV", 43: "DS", 48: "DNSKEY", 46: "RRSIG", 47: "NSEC", 50: "NSEC3", 65: "HTTPS",
                   251: "IXFR", 252: "AXFR", 255: "ANY"}
