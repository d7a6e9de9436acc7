"""cache's metrics (CoreDNS names, help texts and labels); the entries gauge counts every live Cache."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pycoredns import metrics

if TYPE_CHECKING:
    from .handler import Cache

SUCCESS = "success"  # the `type` label values (and the Corefile's option names)
DENIAL = "denial"

# Every live Cache, with the order it was set up in (weak: a cache that is gone is not reported).
LIVE: weakref.WeakKeyDictionary[Cache, int] = weakref.WeakKeyDictionary()
_order = itertools.count()


def track(cache: Cache) -> None:
    LIVE[cache] = next(_order)


def forget(cache: Cache) -> None:
    LIVE.pop(cache, None)


def _entries() -> Iterable[tuple[tuple[str, ...], float]]:
    """One sample per label set: when two caches share one (the old and the new configuration during
    a reload, or a configuration whose shutdown has not run yet), the one set up last is reported, as
    CoreDNS's gauge holds the value the last cache set. A scrape never repeats a sample."""
    latest: dict[tuple[str, str], Cache] = {}
    for c, _ in sorted(LIVE.items(), key=lambda item: item[1]):
        latest[(c.server, c.zones_label)] = c
    for c in latest.values():
        yield (c.server, SUCCESS, c.zones_label, ""), float(len(c.pcache))
        yield (c.server, DENIAL, c.zones_label, ""), float(len(c.ncache))


R = metrics.REGISTRY
entries_gauge = R.gauge_func("coredns_cache_entries", "The number of elements in the cache.", _entries,
                             ("server", "type", "zones", "view"))
requests_total = R.counter("coredns_cache_requests_total", "The count of cache requests.",
                           ("server", "zones", "view"))
hits_total = R.counter("coredns_cache_hits_total", "The count of cache hits.", ("server", "type", "zones", "view"))
misses_total = R.counter(
    "coredns_cache_misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    ("server", "zones", "view"))
prefetch_total = R.counter("coredns_cache_prefetch_total",
                           "The number of times the cache has prefetched a cached item.", ("server", "zones", "view"))
drops_total = R.counter("coredns_cache_drops_total",
                        "The number responses that are not cached, because the reply is malformed.",
                        ("server", "zones", "view"))
served_stale_total = R.counter("coredns_cache_served_stale_total",
                               "The number of requests served from stale cache entries.", ("server", "zones", "view"))
evictions_total = R.counter("coredns_cache_evictions_total", "The count of cache evictions.",
                            ("server", "type", "zones", "view"))


def inc(counter: metrics.Counter, labels: tuple[str, ...]) -> None:
    v = counter.values
    v[labels] = v.get(labels, 0.0) + 1.0


class Labels:
    """Label tuples of one (server, zones) pair, built once so that counting is a dict add."""

    __slots__ = ("denial", "plain", "success")

    def __init__(self, server: str, zones: str) -> None:
        self.plain = (server, zones, "")
        self.success = (server, SUCCESS, zones, "")
        self.denial = (server, DENIAL, zones, "")
