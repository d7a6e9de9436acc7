"""prometheus' own metrics: build info, the process metrics read from /proc at scrape time, and the
`/metrics` exposition."""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable

from pycoredns import metrics
from pycoredns.log import plugin_logger
from pycoredns.metrics import REGISTRY

log = plugin_logger("prometheus")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

build_info = REGISTRY.gauge(
    "coredns_build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
    ("version", "revision", "goversion"))


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


def register_process_metrics() -> None:
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
