"""One deadline structure for every query that waits by continuation: a heap driven by one task.

A forwarded query is not a task, so it cannot have a cancel scope; it registers a callback instead:

    t = call_later(2.0, on_timeout)   # a Timer; on_timeout() runs in the timer task
    t.cancel()                        # the reply came first: O(1), the heap entry is skipped later

The heap holds (deadline, sequence, timer); cancelled timers are dropped lazily when they reach the
top. One system task per trio run sleeps until the earliest deadline (its cancel scope's deadline is
moved earlier when an earlier timer arrives, which forwarded queries almost never do: their deadlines
grow with time). Callbacks run synchronously and must not block; an exception in one is logged.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import trio

from . import log

__all__ = ["Timer", "call_at", "call_later", "pending_count"]


class Timer:
    """A scheduled callback; `cancel()` before it fires and it never runs."""

    __slots__ = ("fn", "when")

    def __init__(self, when: float, fn: Callable[[], object]) -> None:
        self.when = when
        self.fn: Callable[[], object] | None = fn

    def cancel(self) -> None:
        self.fn = None


class _Wheel:
    """The per-run heap and its driver task."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Timer]] = []
        self.seq = itertools.count()
        self.scope: trio.CancelScope | None = None
        trio.lowlevel.spawn_system_task(self._run, name="pycoredns.timers")

    def add(self, t: Timer) -> None:
        heapq.heappush(self.heap, (t.when, next(self.seq), t))
        scope = self.scope
        if scope is not None and t.when < scope.deadline:
            scope.deadline = t.when

    async def _run(self) -> None:
        heap = self.heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else float("inf")) as self.scope:
                await trio.sleep_forever()
            self.scope = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                t = heapq.heappop(heap)[2]
                fn, t.fn = t.fn, None
                if fn is not None:
                    try:
                        fn()
                    except Exception as e:  # a broken callback must not stop every other deadline
                        log.core.error(f"timer callback failed: {type(e).__name__}: {e}")


_WHEEL: trio.lowlevel.RunVar[_Wheel] = trio.lowlevel.RunVar("pycoredns_timers")


def _wheel() -> _Wheel:
    try:
        return _WHEEL.get()
    except LookupError:
        w = _Wheel()
        _WHEEL.set(w)
        return w


def call_at(when: float, fn: Callable[[], object]) -> Timer:
    """Run `fn()` at trio time `when` (trio.current_time() clock) unless cancelled first."""
    t = Timer(when, fn)
    _wheel().add(t)
    return t


def call_later(delay: float, fn: Callable[[], object]) -> Timer:
    """Run `fn()` after `delay` seconds unless cancelled first."""
    return call_at(trio.current_time() + delay, fn)


def pending_count() -> int:
    """Heap entries not yet fired or dropped (cancelled timers count until they reach the top)."""
    try:
        return len(_WHEEL.get().heap)
    except LookupError:
        return 0
