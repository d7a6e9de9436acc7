"""`file DBFILE [ZONES...] { reload DURATION; reload_by_mtime; fallthrough [ZONES...]; upstream }`.

CoreDNS's parse and error texts: a zone that fails to parse stops the server; a file that cannot be
opened is only a warning while `reload` is on (it is retried), an error with `reload 0`.
"""

from __future__ import annotations

import os

from pycoredns.config import origins_from_args_or_keys
from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller, go_quote
from pycoredns.util import Fallthrough, format_duration, parse_duration

from .handler import File, ZoneSlot
from .zone import Zone

log = plugin_logger("file")


def setup(c: Controller) -> None:
    slots: dict[str, ZoneSlot] = {}
    fall = Fallthrough()
    reload, by_mtime = 60.0, False
    open_err: OSError | None = None
    for _ in c.occurrences():
        if not c.next_arg():
            raise c.arg_err()
        path = c.path(c.val())
        origins = origins_from_args_or_keys(c.remaining_args(), c.keys)
        for origin in origins:
            slot = slots[origin] = ZoneSlot(origin, os.path.normpath(path))
            try:
                slot.zone = Zone.load(origin, slot.path, 0)  # 0: CoreDNS's Parse(..., 0) at setup
            except OSError as e:
                open_err = e
            except ValueError as e:
                raise ConfigError(str(e)) from None
        while c.next_block():
            option = c.val()
            if option == "fallthrough":
                fall.set_zones(c.remaining_args())
            elif option == "reload":
                args = c.remaining_args()
                if not args:
                    raise ConfigError("reload duration value is expected")
                try:
                    reload = parse_duration(args[0])
                except ValueError as e:
                    raise ConfigError(f"plugin/file: {e}") from None
            elif option == "reload_by_mtime":
                by_mtime = True
            elif option == "upstream":
                c.remaining_args()  # accepted and ignored, as in CoreDNS
            else:
                raise c.errf("unknown property '%s'", option)
        for origin in origins:
            slots[origin].reload, slots[origin].by_mtime = reload, by_mtime
    if open_err is not None:
        text = f"open {open_err.filename}: {(open_err.strerror or str(open_err)).lower()}"
        if reload == 0:
            raise ConfigError(f"plugin/file: {text}")
        log.warning(f"Failed to open {go_quote(text)}: trying again in {format_duration(reload)}")
    handler = File(slots, fall)
    notify = _notifier(c.block)
    for slot in slots.values():
        c.start_soon(slot.reload_loop, notify)

    async def notify_all() -> None:
        """CoreDNS notifies the secondaries of every zone when the server starts."""
        for name in slots:
            notify(name)

    c.on_startup(notify_all)
    c.add_handler(handler)


def _notifier(block):
    """The block's transfer plugin's notify(zone), looked up when a reload happens."""

    def notify(zone: str) -> None:
        xfer = block.handler("transfer")
        if xfer is not None and hasattr(xfer, "notify"):
            xfer.notify(zone)

    return notify
