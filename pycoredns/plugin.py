"""The public plugin API: handlers, the setup controller, errors.

A plugin is a module with `setup(c: Controller) -> None`. Setup reads the directive's tokens through
the controller (a caddy-style dispenser whose errors read exactly like CoreDNS's) and adds handlers
with `c.add_handler(...)`. The server chains handlers in plugin.cfg order (`pycoredns.directives`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from . import wire
from .corefile import CorefileError, Dispenser, Token
from .request import Request, ResponseWriter

if TYPE_CHECKING:
    from .instance import BlockConfig, Instance
    from .process import Process

NOT_WRITTEN = frozenset((wire.SERVFAIL, wire.REFUSED, wire.FORMERR, wire.NOTIMP))


def client_write(rcode: int) -> bool:
    """True when a handler returning `rcode` has written the reply itself (CoreDNS ClientWrite)."""
    return rcode not in NOT_WRITTEN


class PluginError(Exception):
    """An error a handler returns with an rcode: `errors` logs it, the server writes the rcode."""

    def __init__(self, rcode: int, message: str) -> None:
        super().__init__(message)
        self.rcode = rcode


class ConfigError(Exception):
    """A setup error; the runner prints it as `plugin/<name>: <message>`."""


def go_quote(text: str) -> str:
    """Go's %q / strconv.Quote for the plain strings setup errors quote."""
    import json

    return json.dumps(text, ensure_ascii=False)


def config_atoi(text: str) -> int:
    """A setup argument read with Go's strconv.Atoi: ConfigError with Go's texts."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or not body.isascii():
        raise ConfigError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    n = int(text)
    if not -(1 << 63) <= n < (1 << 63):
        raise ConfigError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return n


def config_uint(text: str, func: str = "ParseUint", bits: int = 64) -> int:
    """A setup argument read with Go's strconv.ParseUint(text, 10, bits): ConfigError with Go's texts."""
    if not text.isdigit() or not text.isascii():
        raise ConfigError(f"strconv.{func}: parsing {go_quote(text)}: invalid syntax")
    n = int(text)
    if n >= 1 << bits:
        raise ConfigError(f"strconv.{func}: parsing {go_quote(text)}: value out of range")
    return n


def config_duration(text: str) -> float:
    """A setup argument read with Go's time.ParseDuration: seconds, or ConfigError with Go's text."""
    from .util import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None


class _Next:
    """Sentinel a SyncHandler returns to pass the query on."""

    def __repr__(self) -> str:
        return "NEXT"


NEXT: Any = _Next()


class Handler:
    """A link in a server block's chain. See DEVELOPERS.md for the contract."""

    name: ClassVar[str] = ""
    next: Handler | None = None

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, w)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        """Synchronous attempt: the rcode, or None when the query needs waiting (nothing done)."""
        return None

    async def next_or_failure(self, req: Request, w: ResponseWriter) -> int:
        if self.next is None:
            raise PluginError(wire.SERVFAIL, f"plugin/{self.name}: no next plugin found")
        return await self.next.serve_dns(req, w)

    def next_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if self.next is None:
            raise PluginError(wire.SERVFAIL, f"plugin/{self.name}: no next plugin found")
        return self.next.serve_fast(req, w)

    # Optional hooks.
    def ready(self) -> bool | None:
        """Readiness for the `ready` plugin: None when the plugin does not report readiness."""
        return None


class SyncHandler(Handler):
    """A handler whose own work never waits: implement `handle`, get both paths for free."""

    def handle(self, req: Request, w: ResponseWriter) -> int:
        """Answer and return the rcode, return a not-written rcode, or return NEXT."""
        return NEXT

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        rc = self.handle(req, w)
        if rc is NEXT:
            return await self.next_or_failure(req, w)
        return rc

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        rc = self.handle(req, w)
        if rc is NEXT:
            return self.next_fast(req, w)
        return rc


Hook = Callable[[], Awaitable[None]]


class Controller(Dispenser):
    """What a plugin's setup sees: its tokens in one server block, plus the block and the process."""

    def __init__(self, directive: str, filename: str, tokens: list[Token], block: BlockConfig,
                 instance: Instance) -> None:
        super().__init__(filename, tokens)
        self.directive = directive
        self.block = block
        self.instance = instance

    # -- where we are ------------------------------------------------------------------------
    @property
    def process(self) -> Process:
        return self.instance.process

    @property
    def keys(self) -> list[str]:
        """The block's canonical keys, e.g. `dns://example.org.:53`."""
        return [a.key() for a in self.block.addresses]

    @property
    def zones(self) -> list[str]:
        """The block's zones (lowercased FQDNs): what optional ZONES arguments default to."""
        seen: list[str] = []
        for a in self.block.addresses:
            if a.zone not in seen:
                seen.append(a.zone)
        return seen

    @property
    def root(self) -> str:
        return self.block.root

    def path(self, p: str) -> str:
        """A file argument resolved against the block's `root`."""
        return p if os.path.isabs(p) else os.path.join(self.block.root, p)

    def server_label(self) -> str:
        """The `server` metric label of this block's first listener (`dns://:53`)."""
        return self.block.server_label()

    # -- results -----------------------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        self.block.add_handler(self.directive, handler)

    def on_startup(self, fn: Hook) -> None:
        """Awaited before the listeners open (kubernetes waits for its sync here)."""
        self.instance.startup_hooks.append(fn)

    def on_shutdown(self, fn: Hook) -> None:
        """Awaited when this configuration stops, on reload and at exit."""
        self.instance.shutdown_hooks.append(fn)

    def on_final_shutdown(self, fn: Hook) -> None:
        """Awaited only when the process exits (health's lameduck)."""
        self.instance.final_shutdown_hooks.append(fn)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task for as long as this configuration runs."""
        self.instance.background.append((fn, args))

    def http_route(self, address: str, path: str, fn: Any) -> None:
        """Serve `path` on the process-wide HTTP server for `address` while this config runs.

        `fn(method, target)` returns (status, content type, body), or an awaitable of it.
        """
        self.instance.http_routes.append((address, path, fn))

    # -- argument helpers with CoreDNS's messages -------------------------------------------
    def once(self, seen: int) -> None:
        """Raise CoreDNS's ErrOnce when a once-per-block plugin appears again."""
        if seen > 0:
            raise ConfigError("this plugin can only be used once per Server Block")

    def occurrences(self, once: bool = False):
        """Iterate over each occurrence of the directive (the dispenser sits on its name)."""
        i = 0
        while self.next():
            if once:
                self.once(i)
            yield i
            i += 1

    def address_arg(self, default: str) -> str:
        """The optional `[ADDRESS]` argument of health, ready and prometheus: `host:port` or `default`."""
        from .http import split_address

        args = self.remaining_args()
        if len(args) > 1:
            raise self.arg_err()
        if not args:
            return default
        try:
            split_address(args[0], 0)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return args[0]

    def zones_from(self, args: list[str]) -> list[str]:
        """Normalise ZONES arguments (CIDRs expand); the block's zones when there are none."""
        from .util import normalize_zones

        return normalize_zones(args) if args else list(self.zones)


__all__ = [
    "NEXT",
    "NOT_WRITTEN",
    "ConfigError",
    "Controller",
    "CorefileError",
    "Handler",
    "PluginError",
    "Request",
    "ResponseWriter",
    "SyncHandler",
    "client_write",
    "config_atoi",
    "config_duration",
    "config_uint",
    "go_quote",
]
