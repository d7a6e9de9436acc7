"""`reload [INTERVAL] [JITTER]`: Corefile parsing; the period goes to the configuration's state."""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller
from pycoredns.plugin import config_duration as _duration

from .poller import DEFAULT_INTERVAL, DEFAULT_JITTER, STATE, period, poller

MIN_INTERVAL = 2.0
MIN_JITTER = 1.0


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
    scope = c.scope
    if STATE not in scope.state:
        runtime = c.runtime
        c.on_serving(lambda: poller(runtime).activated(scope))
    scope.watches_source = True
    scope.state[STATE] = period(interval, jitter)  # process-wide: the last setup wins
