"""The setup API: what a plugin's `setup(c)` sees, and Go-compatible argument readers.

Plugins import these through `pycoredns.plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from .block import BlockConfig
from .context import ConfigScope, Hook, Route, Runtime, state
from .corefile import Dispenser, Token
from .corefile.errors import go_quote as _go_quote
from .exceptions import ConfigError
from .goparse import atoi, parse_duration, parse_uint
from .handler import Handler
from .http import split_address
from .util import normalize_zones

T = TypeVar("T")


def go_quote(text: str) -> str:
    """Go's %q / strconv.Quote: escaped quotes and backslashes, \\n \\r \\t, \\x.. / \\u.... for what
    is not printable, printable Unicode kept (one implementation: pycoredns.corefile.errors)."""
    return _go_quote(text)


def config_atoi(text: str) -> int:
    """A setup argument read with Go's strconv.Atoi: ConfigError with Go's texts."""
    return _config(atoi, text)


def config_uint(text: str, func: str = "ParseUint", bits: int = 64) -> int:
    """A setup argument read with Go's strconv.ParseUint(text, 10, bits): ConfigError with Go's texts."""
    return _config(parse_uint, text, func, bits)


def config_duration(text: str) -> float:
    """A setup argument read with Go's time.ParseDuration: seconds, or ConfigError with Go's text."""
    return _config(parse_duration, text)


def _config(parse: Callable[..., T], *args: Any) -> T:
    """`parse(*args)` with its ValueError (Go's text) raised as the ConfigError setup reports."""
    try:
        return parse(*args)
    except ValueError as e:
        raise ConfigError(str(e)) from None


class Controller(Dispenser):
    """What a plugin's setup sees: its tokens in one server block, the block, and a narrow runtime.

    Everything a plugin may do beyond adding handlers goes through the methods below (hooks, HTTP
    routes, shared state, tasks, listen addresses); the configuration and the process behind them
    are not reachable from here.
    """

    def __init__(self, directive: str, filename: str, tokens: list[Token], block: BlockConfig,
                 scope: ConfigScope) -> None:
        super().__init__(filename, tokens)
        self.directive = directive
        self.block = block
        self.scope = scope

    # -- where we are ------------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        """The running program (process-wide tasks, reloading, the configuration serving now)."""
        return self.scope.runtime

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

    def handler(self, name: str) -> Handler | None:
        """Another plugin's handler in this server block, by directive name (duck-typed), or None.

        Setup runs directive by directive in plugin.cfg order, so during `setup` only plugins set up
        before this one are there; look up from a startup hook to see the whole block (CoreDNS's
        `dnsserver.GetConfig(c).Handler(name)` in an `OnStartup`):

            def setup(c):
                ext = External(zones)
                async def link() -> None:
                    ext.backend = c.handler("kubernetes")  # None when the block has no kubernetes
                c.on_startup(link)
                c.add_handler(ext)
        """
        return self.block.handler(name)

    # -- results -----------------------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        self.block.add_handler(self.directive, handler)

    def on_startup(self, fn: Hook) -> None:
        """Awaited before the listeners open (kubernetes waits for its sync here)."""
        self.scope.startup_hooks.append(fn)

    def on_shutdown(self, fn: Hook) -> None:
        """Awaited when this configuration stops, on reload and at exit."""
        self.scope.shutdown_hooks.append(fn)

    def on_final_shutdown(self, fn: Hook) -> None:
        """Awaited only when the process exits (health's lameduck)."""
        self.scope.final_shutdown_hooks.append(fn)

    def on_serving(self, fn: Callable[[], None]) -> None:
        """Called once this configuration has taken over the listeners (after a reload swap too)."""
        self.scope.activated_hooks.append(fn)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task for as long as this configuration runs (started before the hooks)."""
        self.scope.background.append((fn, args))

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Start a task now, while the configuration runs (from a handler); False when it is not running."""
        return self.scope.spawn(fn, *args)

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """`nursery.start(fn, *args)` in this configuration's nursery (from a startup hook)."""
        return await self.scope.start(fn, *args)

    def http_route(self, address: str, path: str, fn: Route) -> None:
        """Serve `path` on the process-wide HTTP server for `address` while this config runs.

        `fn(method, target)` returns (status, content type, body), or an awaitable of it. A second
        registration of the same address and path replaces the first.
        """
        self.scope.routes[(address, path)] = fn

    def remove_http_route(self, address: str, path: str) -> None:
        """Withdraw a route: during setup from this configuration; while it runs also from the live
        server (closed once it has no routes left), e.g. `ready` before health's lameduck."""
        self.scope.routes.pop((address, path), None)
        if self.scope.nursery is not None and self.runtime.serving_scope() is self.scope:
            self.runtime.remove_http_route(address, path)

    # -- shared state ----------------------------------------------------------------------------
    def process_state(self, key: str, factory: Callable[[], T]) -> T:
        """One object per process under `key` (made by `factory` on first use), kept across reloads."""
        return state(self.runtime.shared, key, factory)

    def config_state(self, key: str, factory: Callable[[], T]) -> T:
        """One object per configuration under `key`: shared by every block, fresh on reload."""
        return state(self.scope.state, key, factory)

    def block_state(self, key: str, factory: Callable[[], T]) -> T:
        """One object per server block under `key`."""
        return state(self.block.extra, key, factory)

    # -- the running configuration ---------------------------------------------------------------
    async def wait_serving(self) -> None:
        """Return once this configuration's listeners are bound and being read."""
        await self.scope.serving.wait()

    def listen_addresses(self) -> list[tuple[str, str, int]]:
        """(transport, host, bound port) of this block's listeners; ports are real after `wait_serving`."""
        return self.scope.listen_addresses(self.block)

    def listen_hosts(self) -> list[str]:
        """The hosts `bind` set for this block so far ([""] without bind: every address), as CoreDNS's
        dnsserver.Config.ListenHosts; plugins after `bind` in the order see its values."""
        return list(self.block.listen_hosts)

    def not_ready(self) -> list[str]:
        """Names of the plugins in this configuration that report not ready (sorted, unique)."""
        return self.scope.not_ready()

    # -- argument helpers with CoreDNS's messages -------------------------------------------
    def once(self, seen: int) -> None:
        """Raise CoreDNS's ErrOnce when a once-per-block plugin appears again."""
        if seen > 0:
            raise ConfigError("this plugin can only be used once per Server Block")

    def occurrences(self, once: bool = False) -> Iterator[int]:
        """Iterate over each occurrence of the directive (the dispenser sits on its name)."""
        i = 0
        while self.next():
            if once:
                self.once(i)
            yield i
            i += 1

    def address_arg(self, default: str) -> str:
        """The optional `[ADDRESS]` argument of health, ready and prometheus: `host:port` or `default`."""
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
        return normalize_zones(args) if args else list(self.zones)
