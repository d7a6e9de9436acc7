"""The process-wide poller: re-reads the Corefile every period and reloads when its hash changed.

One `Poller` lives in the process state (`Controller.process_state("reload", ...)`) and survives every
swap; the period of the configuration serving now applies. A configuration without `reload` stops
the poller at its next tick.
"""

from __future__ import annotations

import random

import trio

from pycoredns.context import state
from pycoredns.corefile import CorefileError, fingerprint, parse
from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigScope, Runtime

from .metrics import failed_total, version_info

log = plugin_logger("reload")

DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0
STATE = "reload"  # key of the per-configuration period and of the process-wide poller


def period(interval: float, jitter: float) -> float:
    """The effective poll period: INTERVAL + uniform[-JITTER/2, JITTER/2), jitter capped at INTERVAL/2."""
    jitter = min(jitter, interval / 2)
    return interval + (random.uniform(-jitter / 2, jitter / 2) if jitter else 0.0)


class Poller:
    """The single process-wide polling task."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.period = DEFAULT_INTERVAL
        self.hash = ""
        self.running = False
        self._wake = trio.Event()

    def activated(self, scope: ConfigScope) -> None:
        """A configuration using reload now serves: adopt its period and hash, (re)start the timer."""
        self.period = scope.state[STATE]
        self.hash = scope.watch_hash
        version_info.values.clear()
        version_info.set("sha512", scope.fingerprint, value=1)
        log.info(f"Running configuration SHA512 = {scope.fingerprint}")
        if self.running:
            self._wake.set()
        else:
            self.running = True
            self.runtime.start_background(self._run)

    def enabled(self) -> bool:
        scope = self.runtime.serving_scope()
        return scope is not None and STATE in scope.state and not self.runtime.shutting_down

    async def _run(self) -> None:
        try:
            while True:
                with trio.move_on_after(self.period):
                    await self._wake.wait()
                if self._wake.is_set():  # a new configuration: restart the timer with its period
                    self._wake = trio.Event()
                    continue
                if not self.enabled():
                    return
                await self.tick()
        finally:
            self.running = False

    async def tick(self) -> bool:
        """One poll (also callable directly, e.g. by tests): True when a reload was attempted."""
        try:
            text, filename = self.runtime.read_config()
        except Exception:  # CoreDNS skips the tick silently when the loader fails
            return False
        try:
            blocks = parse(text, filename, directives=None)
        except CorefileError as e:
            log.warning(f"Corefile parse failed: {e}")
            return False
        except Exception as e:
            log.warning(f"Corefile parse failed: {type(e).__name__}: {e}")
            return False
        new = fingerprint(blocks)
        if new == self.hash:
            return False
        self.hash = new  # do not retry the same (possibly broken) file
        err = await self.runtime.restart()
        version_info.values.clear()
        version_info.set("sha512", new, value=1)
        if err is not None and not self.runtime.shutting_down:
            log.error(f"Corefile changed but reload failed: {err}")
            failed_total.inc()
        return True


def poller(runtime: Runtime) -> Poller:
    """The process's one poller (created on first use, kept across reloads)."""
    return state(runtime.shared, STATE, lambda: Poller(runtime))
