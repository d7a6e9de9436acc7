"""prometheus' Corefile parsing: `prometheus [ADDRESS]`, its (refused) options, the /metrics route and
the coredns_plugin_enabled gauge."""

from __future__ import annotations

import platform
from typing import Any

from pycoredns import COREDNS_VERSION, __version__, metrics
from pycoredns.plugin import Controller

from .handler import Metrics, flush
from .metrics import build_info, expose, register_process_metrics

DEFAULT_ADDRESS = "localhost:9153"


# -- setup -----------------------------------------------------------------------------------------


def _view_name(block) -> str:
    """The block's `view` name (the `view` plugin leaves its handler in the block's extra settings)."""
    view = block.extra.get("view")
    return getattr(view, "view_name", "") if view is not None else ""


def _enabled_labels(block) -> list[tuple[str, str, str, str]]:
    """coredns_plugin_enabled label sets of a block: each listener address x zone x chain handler."""
    out = []
    for a in block.addresses:
        for h in block.listen_hosts:
            host = f"[{h}]" if ":" in h else h
            for handler in block.handlers:
                out.append((f"{a.transport}://{host}:{a.port}", a.zone, _view_name(block), handler.name))
    return out


def setup(c: Controller) -> None:
    addr = DEFAULT_ADDRESS
    for _ in c.occurrences(once=True):
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() == "tls":
                raise c.err("tls is not supported by pycoredns")
            raise c.errf("unknown option: %s", c.val())
    build_info.set(COREDNS_VERSION, f"pycoredns-{__version__}", f"python{platform.python_version()}", value=1)
    register_process_metrics()
    state: dict[str, Any] = c.config_state("prometheus", lambda: {"addrs": set(), "blocks": []})
    if addr not in state["addrs"]:
        state["addrs"].add(addr)
        c.http_route(addr, "/metrics", expose)
    if not state["blocks"]:

        async def publish_enabled() -> None:
            # CoreDNS resets the gauge on restart and each block with prometheus sets its own.
            metrics.plugin_enabled.values.clear()
            for block in state["blocks"]:
                for labels in _enabled_labels(block):
                    metrics.plugin_enabled.set(*labels, value=1)

        async def fold_pending() -> None:
            # the pending observations refer to this configuration's handlers and listeners: fold them
            # when it stops (a reload), so that they do not keep its chains alive until the next scrape
            flush()

        c.on_startup(publish_enabled)
        c.on_shutdown(fold_pending)
    state["blocks"].append(c.block)
    handler = Metrics(list(c.zones), c.server_label())
    block = c.block

    async def set_view() -> None:  # `view` is set up after prometheus (plugin.cfg order)
        handler.view = _view_name(block)

    c.on_startup(set_view)
    c.add_handler(handler)
