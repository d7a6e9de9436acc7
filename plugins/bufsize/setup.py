"""`bufsize [SIZE]`: default 1232, 512..4096; errors read as CoreDNS's (the plugin name twice)."""

from __future__ import annotations

from pycoredns.plugin import ConfigError, Controller, config_atoi

from .handler import Bufsize

DEFAULT = 1232
LOW, HIGH = 512, 4096


def _size(c: Controller) -> int:
    args = c.remaining_args()
    if not args:
        return DEFAULT
    if len(args) == 1:
        try:
            size = config_atoi(args[0])
        except ConfigError:
            size = -1
        if LOW <= size <= HIGH:
            return size
    # CoreDNS wraps ArgErr in plugin.Error("bufsize", ...) inside parse and again in setup
    raise ConfigError(f"plugin/bufsize: {c.arg_err()}")


def setup(c: Controller) -> None:
    if not c.next():
        raise ConfigError(f"plugin/bufsize: {c.arg_err()}")
    c.add_handler(Bufsize(_size(c)))  # like CoreDNS, only the first `bufsize` of a block counts
