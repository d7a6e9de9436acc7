"""reload: poll the Corefile (imports expanded) and reload gracefully when it changed (CoreDNS `reload`).

`reload [INTERVAL] [JITTER]`: every INTERVAL ± JITTER/2 the Corefile is read again through the same
loader (so kubelet's `..data` symlink swaps are seen: nothing is cached between polls), parsed with
imports expanded and without directive validation, and hashed (SHA-512 of the parsed blocks). A new
hash is stored first (a broken file is not retried until it changes again), then the process
reloads; the old configuration keeps serving when that fails.

Process-wide: one poller task lives in `process.shared["reload"]` and survives every swap; the
interval of the configuration that is serving (the last `reload` set up in it) applies. A
configuration without `reload` stops the poller at its next tick.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import trio

from pycoredns.corefile import CorefileError, fingerprint, parse
from pycoredns.log import plugin_logger
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import ConfigError, Controller
from pycoredns.plugin import config_duration as _duration

if TYPE_CHECKING:
    from pycoredns.instance import Instance
    from pycoredns.process import Process

log = plugin_logger("reload")

DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0
MIN_INTERVAL = 2.0
MIN_JITTER = 1.0

version_info = REGISTRY.gauge(
    "coredns_reload_version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ("hash", "value"))
failed_total = REGISTRY.counter(
    "coredns_reload_failed_total", "Counter of the number of failed reload attempts.")


def period(interval: float, jitter: float) -> float:
    """The effective poll period: INTERVAL + uniform[-JITTER/2, JITTER/2), jitter capped at INTERVAL/2."""
    jitter = min(jitter, interval / 2)
    return interval + (random.uniform(-jitter / 2, jitter / 2) if jitter else 0.0)


def setup(c: Controller) -> None:
    # As CoreDNS: only the block's first `reload` line is read; a `{ }` after it is ignored.
    c.next()
    args = c.remaining_args()
    if len(args) > 2:
        raise c.arg_err()
    interval = _duration(args[0]) if args else DEFAULT_INTERVAL
    if interval < MIN_INTERVAL:
        raise ConfigError("interval value must be greater or equal to 2s")
    jitter = _duration(args[1]) if len(args) > 1 else DEFAULT_JITTER
    if jitter < 0 or 0 < jitter < MIN_JITTER:
        raise ConfigError("jitter value must be greater or equal to 1s")
    inst = c.instance
    if "reload" not in inst.state:
        inst.activated_hooks.append(lambda: poller(inst.process).activated(inst))
    inst.state["reload"] = period(interval, jitter)  # process-wide: the last setup wins


def poller(process: Process) -> Poller:
    """The process's one poller (created on first use, kept across reloads)."""
    p = process.shared.get("reload")
    if p is None:
        p = process.shared["reload"] = Poller(process)
    return p


class Poller:
    """The single process-wide polling task."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.period = DEFAULT_INTERVAL
        self.hash = ""
        self.running = False
        self._wake = trio.Event()

    def activated(self, inst: Instance) -> None:
        """A configuration using reload now serves: adopt its period and hash, (re)start the timer."""
        self.period = inst.state["reload"]
        self.hash = inst.watch_hash
        version_info.values.clear()
        version_info.set("sha512", inst.fingerprint, value=1)
        log.info(f"Running configuration SHA512 = {inst.fingerprint}")
        if self.running:
            self._wake.set()
        else:
            self.running = True
            self.process.start_background(self._run)

    def enabled(self) -> bool:
        inst = self.process.instance
        return inst is not None and "reload" in inst.state and not self.process.shutting_down

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
            text, filename = self.process.read_config()
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
        err = await self.process.restart()
        version_info.values.clear()
        version_info.set("sha512", new, value=1)
        if err is not None and not self.process.shutting_down:
            log.error(f"Corefile changed but reload failed: {err}")
            failed_total.inc()
        return True
