"""A server block after setup: its addresses, listen hosts, settings and chain of handlers."""

from __future__ import annotations

import itertools
import os
from typing import Any

from . import directives, wire
from .config import ZoneAddress
from .handler import Handler


class BlockConfig:
    """A server block after setup: its zones, listen hosts and one shared chain of handlers."""

    def __init__(self, index: int, addresses: list[ZoneAddress], filename: str) -> None:
        self.index = index
        self.addresses = addresses
        self.filename = filename
        self.listen_hosts: list[str] = [""]
        self.root = os.getcwd()
        self.debug = False
        self.directive_names: set[str] = set()
        self._handlers: list[tuple[int, int, str, Handler]] = []
        self.chain: Handler | None = None
        self.handlers: list[Handler] = []
        self.extra: dict[str, Any] = {}  # per-block settings plugins share (timeouts, ...)
        self._zone_text = {wire.text_to_wire(a.zone).lower(): a.zone for a in addresses}

    def add_handler(self, directive: str, handler: Handler) -> None:
        if not handler.name:
            handler.name = directive  # type: ignore[misc]
        self._handlers.append((directives.position(directive), len(self._handlers), directive, handler))

    def build_chain(self) -> None:
        ordered = [h for *_, h in sorted(self._handlers, key=lambda t: (t[0], t[1]))]
        for a, b in itertools.pairwise(ordered):
            a.next = b
        if ordered:
            ordered[-1].next = None
        self.handlers = ordered
        self.chain = ordered[0] if ordered else None

    def handler(self, name: str) -> Handler | None:
        """The handler a directive (or a handler whose `name` is `name`) added to this block, else None.

        Chains are built after every directive's setup, so a plugin that needs another plugin's
        handler looks it up from a startup hook (CoreDNS's `dnsserver.GetConfig(c).Handler(name)`).
        """
        for _, _, directive, h in self._handlers:
            if directive == name or h.name == name:
                return h
        return None

    def zone_of(self, wire_zone: bytes) -> str:
        return self._zone_text.get(wire_zone, ".")

    @property
    def zones(self) -> list[str]:
        return list(dict.fromkeys(a.zone for a in self.addresses))

    def server_label(self) -> str:
        a = self.addresses[0]
        host = self.listen_hosts[0] if self.listen_hosts else ""
        host = f"[{host}]" if ":" in host else host
        return f"{a.transport}://{host}:{a.port}"
