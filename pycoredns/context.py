"""The narrow runtime plugins see through their `Controller`: hooks, routes, shared state, spawn.

A plugin never holds the `Instance` (one loaded configuration) or the `Process` (the running program).
Setup registers what it needs on a `ConfigScope`, a plain object the configuration owns and runs;
process-wide needs (reload's poller, the `/ready` detail) go through the `Runtime` protocol, which
`pycoredns.process.Process` implements. Both live here, below the setup API, so nothing in the
setup path imports upward.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import trio

from .block import BlockConfig

Hook = Callable[[], Awaitable[None]]
"""A startup or shutdown hook: awaited once, in registration order."""

RouteResult = tuple[int, str, bytes]
Route = Callable[[str, str], RouteResult | Awaitable[RouteResult]]
"""An HTTP route: `fn(method, target)` returns (status, content type, body), or an awaitable of it."""

T = TypeVar("T")


class Runtime(Protocol):
    """The running program as configurations and process-wide plugins see it."""

    shared: dict[str, Any]
    """Process-wide plugin state that outlives configurations (filled through `state()`)."""
    status_detail: str
    """An extra line `/ready` shows with its OK (the last-known-good fallback explains itself here)."""

    @property
    def shutting_down(self) -> bool: ...

    def read_config(self) -> tuple[str, str]:
        """The configuration source again: (text, filename). Raises StartupError."""
        ...

    async def restart(self) -> str | None:
        """Load the configuration again and swap it in: None on success, else why it failed."""
        ...

    def start_background(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a task for the life of the process (not of one configuration)."""
        ...

    def serving_scope(self) -> ConfigScope | None:
        """The scope of the configuration serving now, if any."""
        ...

    def remove_http_route(self, address: str, path: str) -> None:
        """Stop serving `path` on `address` now (the server closes when it has no routes left)."""
        ...


def state(store: dict[str, Any], key: str, factory: Callable[[], T]) -> T:
    """`store[key]`, made by `factory()` on first use: one object per scope, whoever asks first."""
    try:
        return store[key]  # type: ignore[no-any-return]
    except KeyError:
        value = store[key] = factory()
        return value


class ConfigScope:
    """What one configuration runs for its plugins: hooks, routes, background tasks, shared state.

    Made by the configuration before setup and filled by setup through the `Controller`; the
    configuration runs the hooks and tasks, the process serves the routes.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.final_shutdown_hooks: list[Hook] = []
        self.activated_hooks: list[Callable[[], None]] = []  # run once this configuration serves
        self.background: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self.routes: dict[tuple[str, str], Route] = {}  # (address, path) -> handler, in registration order
        self.state: dict[str, Any] = {}  # per-configuration plugin state
        self.fingerprint = ""  # SHA512 of the parsed configuration
        self.watch_hash = ""  # what reload compares the source with (differs on last-known-good)
        self.watches_source = False  # a plugin (reload) polls the source for changes
        self.nursery: trio.Nursery | None = None  # set while the configuration runs
        self.serving = trio.Event()  # set once its listeners are bound and read
        self.not_ready: Callable[[], list[str]] = list  # filled by the configuration after setup
        self.listen_addresses: Callable[[BlockConfig], list[tuple[str, str, int]]] = lambda block: []

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Start a task in this configuration's nursery; False (and nothing runs) when it is not running."""
        if self.nursery is None:
            return False
        self.nursery.start_soon(fn, *args)
        return True

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """`nursery.start(fn, *args)` in this configuration's nursery (from a startup hook)."""
        if self.nursery is None:
            raise RuntimeError("the configuration is not running")
        return await self.nursery.start(fn, *args)
