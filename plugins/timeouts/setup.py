"""`timeouts { read D; write D; idle D; maxtcpqueries N }` with CoreDNS's checks and error texts.

No handler: the values go into the block's `extra` settings, which the listeners serving the block
read (`pycoredns.server.Listener.add_zone`; the last block of a listener with a value wins, as the
last site of a CoreDNS server group does).
"""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller, config_atoi
from pycoredns.util import format_duration, parse_duration

# Corefile option -> key in BlockConfig.extra read by the listeners
OPTIONS = {"read": "read_timeout", "write": "write_timeout", "idle": "idle_timeout"}
MIN, MAX = 1.0, 24 * 3600.0


def duration_arg(arg: str) -> float:
    """plugin/pkg/durations.NewDurationFromArg: a bare integer means seconds."""
    text = arg
    try:
        config_atoi(arg)
        text = arg + "s"
    except ConfigError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        raise ConfigError(f"failed to parse duration '{text}'") from None


def setup(c: Controller) -> None:
    extra = c.block.extra
    for _ in c.occurrences():
        if c.remaining_args():
            raise ConfigError(f"plugin/timeouts: {c.arg_err()}")
        seen = 0
        while c.next_block():
            option = c.val()
            args = c.remaining_args()
            if len(args) != 1:
                raise c.arg_err()
            if option == "maxtcpqueries":
                try:
                    n = config_atoi(args[0])
                except ConfigError as e:
                    raise c.errf("invalid value for maxtcpqueries '%s': %v", args[0], str(e)) from None
                if n == 0 or n < -1:
                    raise c.errf("maxtcpqueries provided '%d' needs to be -1 (unlimited) or a positive integer", n)
                extra["max_tcp_queries"] = n
                seen += 1
                continue
            try:
                seconds = duration_arg(args[0])
            except ConfigError as e:
                raise c.err(str(e)) from None
            if not MIN <= seconds <= MAX:
                raise c.errf("timeout provided '%s' needs to be between 1 second and 24 hours",
                             format_duration(seconds))
            if option not in OPTIONS:
                raise c.errf("unknown option: '%s'", option)
            extra[OPTIONS[option]] = seconds
            seen += 1
        if not seen:
            raise ConfigError(f"plugin/timeouts: {c.err('timeouts block with no timeouts specified')}")
