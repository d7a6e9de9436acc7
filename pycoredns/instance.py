"""One loaded configuration: server blocks set up into chains and listeners, started and stopped.

Setup runs directive by directive in plugin.cfg order across all blocks (CoreDNS's model), so a
process-wide plugin sees every block before the next directive runs. Reload builds a new Instance
while the old one serves and then swaps them (`pycoredns.process`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import trio

from . import directives, log
from .block import BlockConfig
from .config import ZoneAddress, normalize_key
from .context import ConfigScope, Hook, Runtime
from .controller import Controller
from .corefile import CorefileError, ServerBlock
from .exceptions import ConfigError, StartupError
from .handler import Handler
from .server import Listener

SocketSource = Callable[[str, str, int], tuple[socket.socket | None, socket.socket]]
"""The process's socket pool: (transport, host, configured port) -> bound (UDP, TCP) sockets, reused
across reloads (tls://: no UDP socket)."""




def _setup_failure(e: Exception) -> str:
    """An unexpected setup exception as text; a NUL byte in a file path reads like Go's `invalid argument`."""
    if isinstance(e, ValueError) and "null byte" in str(e):
        return "invalid argument: a file path contains a NUL byte"
    return f"{type(e).__name__}: {e}"


class Instance:
    """A configuration: parse result → setup → listeners; started inside a Process."""

    def __init__(self, runtime: Runtime, blocks: list[ServerBlock], filename: str, *, dns_port: int = 53,
                 take_sockets: SocketSource | None = None) -> None:
        self.runtime = runtime
        self.dns_port = dns_port
        self.take_sockets = take_sockets
        self.blocks_src = blocks
        self.filename = filename
        self.blocks: list[BlockConfig] = []
        self.listeners: dict[tuple[str, str, int], Listener] = {}
        self.scope = ConfigScope(runtime)  # what setup registers: hooks, routes, tasks, state
        self.scope.not_ready = self.ready
        self.scope.listen_addresses = self.listen_addresses
        self.ready_checks: list[Handler] = []
        self.source: tuple[str, str, dict[str, str]] | None = None  # (text, filename, imported files)
        self.from_lastgood = False
        self.stopped = trio.Event()
        self.go = trio.Event()  # set by the process when the old configuration stopped receiving
        self.receive_done = trio.Event()
        self._receivers: dict[tuple[str, int], tuple[trio.CancelScope, trio.Event]] = {}
        self._stop_all = False

    @property
    def fingerprint(self) -> str:
        """SHA512 of the parsed configuration (`pycoredns.corefile.fingerprint`)."""
        return self.scope.fingerprint

    @property
    def serving(self) -> trio.Event:
        return self.scope.serving

    @property
    def nursery(self) -> trio.Nursery | None:
        return self.scope.nursery

    # -- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Inspect keys, run every directive's setup, build chains and listeners. Raises StartupError."""
        port = self.dns_port
        for i, sb in enumerate(self.blocks_src):
            addrs: list[ZoneAddress] = []
            for key in sb.keys:
                try:
                    addrs.extend(normalize_key(key.text, port))
                except Exception as e:  # ServerBlockKeyError carries CoreDNS's full text
                    raise StartupError(str(e)) from None
            self.blocks.append(BlockConfig(i, addrs, self.filename))
        for name in directives.ordered({name for sb in self.blocks_src for name in sb.tokens}):
            for sb, block in zip(self.blocks_src, self.blocks, strict=True):
                tokens = sb.tokens.get(name)
                if not tokens:
                    continue
                setup = directives.setup_function(name)
                if setup is None:
                    raise StartupError(
                        f"no action found for directive '{name}' with server type 'dns' (missing a plugin?)")
                block.directive_names.add(name)
                c = Controller(name, self.filename, tokens, block, self.scope)
                try:
                    setup(c)
                except (CorefileError, ConfigError) as e:
                    raise StartupError(f"plugin/{name}: {e}") from None
                except StartupError:
                    raise
                except Exception as e:
                    raise StartupError(f"plugin/{name}: {_setup_failure(e)}") from None
        for block in self.blocks:
            block.build_chain()
            self.ready_checks.extend(h for h in block.handlers if type(h).ready is not Handler.ready)
        self._make_listeners()

    def _make_listeners(self) -> None:
        seen: dict[tuple[str, str, str, int], BlockConfig] = {}
        for block in self.blocks:
            for addr in block.addresses:
                for host in block.listen_hosts:
                    self._check_overlap(seen, addr, host, block)
                    key = (addr.transport, host, addr.port)
                    lst = self.listeners.get(key)
                    if lst is None:
                        lst = self.listeners[key] = Listener(addr.transport, host, addr.port)
                    lst.add_zone(addr.zone, block)
        for (transport, *_), _lst in self.listeners.items():
            if transport not in ("dns", "tls"):
                raise StartupError(f"{transport}:// listeners are not supported by pycoredns")

    @staticmethod
    def _check_overlap(seen: dict[tuple[str, str, str, int], BlockConfig], addr: ZoneAddress, host: str,
                       block: BlockConfig) -> None:
        key = (addr.transport, addr.zone, host, addr.port)
        where = f" on {host}" if host else ""
        filtered = "view" in block.extra  # may share its zone and port; checked, never registered
        if key in seen and not filtered:
            raise StartupError(f"cannot serve {addr.key()}{where} - it is already defined")
        if host:
            if (addr.transport, addr.zone, "", addr.port) in seen:
                raise StartupError(
                    f"cannot serve {addr.key()}{where} - zone overlap listener capacity with {addr.key()}")
        else:
            for t, z, h, p in seen:
                if (t, z, p) == (addr.transport, addr.zone, addr.port) and h:
                    raise StartupError(
                        f"cannot serve {addr.key()} on {h} - zone overlap listener capacity with {addr.key()}")
        if not filtered:
            seen[key] = block

    # -- running -------------------------------------------------------------------------------
    def ready(self) -> list[str]:
        """Names of plugins that report not-ready (sorted, unique)."""
        return sorted({h.name for h in self.ready_checks if h.ready() is False})

    def listen_addresses(self, block: BlockConfig) -> list[tuple[str, str, int]]:
        """(transport, host, bound port) of the listeners serving `block`: its keys in order, each on
        every listen host (`bind`), without repeats."""
        out: list[tuple[str, str, int]] = []
        for addr in block.addresses:
            for host in block.listen_hosts:
                lst = self.listeners.get((addr.transport, host, addr.port))
                if lst is not None and (entry := (lst.transport, lst.host, lst.bound_port)) not in out:
                    out.append(entry)
        return out

    async def start(self, nursery: trio.Nursery) -> None:
        """Start background tasks and run startup hooks (listeners are attached by `serve`)."""
        self.scope.nursery = nursery
        for fn, args in self.scope.background:
            nursery.start_soon(fn, *args)
        for hook in self.scope.startup_hooks:
            await hook()

    def bind(self) -> None:
        """Take sockets for every listener from the process pool (binding new ones). Raises OSError."""
        assert self.take_sockets is not None
        for lst in self.listeners.values():
            lst.nursery = self.scope.nursery
            lst.udp_sock, lst.tcp_sock = self.take_sockets(lst.transport, lst.host, lst.port)

    def socket_keys(self) -> set[tuple[str, int]]:
        """The process socket-pool keys (`Listener.socket_key`) this configuration listens on."""
        return {lst.socket_key for lst in self.listeners.values()}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the receive loops until `stop_receiving`; one cancel scope per socket pair.

        Per-socket scopes let a reload stop only the sockets the new configuration takes over
        (two loops must never wait on one fd), while ports the new configuration drops keep being
        served until the swap is complete.
        """
        try:
            async with trio.open_nursery() as n:
                if not self._stop_all:
                    for lst in self.listeners.values():
                        scope, done = self._receivers[lst.socket_key] = trio.CancelScope(), trio.Event()
                        n.start_soon(self._receive, lst, scope, done)
                task_status.started()
                self.scope.serving.set()
        finally:
            self.receive_done.set()

    @staticmethod
    async def _receive(lst: Listener, scope: trio.CancelScope, done: trio.Event) -> None:
        try:
            with scope:
                async with trio.open_nursery() as n:
                    if lst.udp_sock is not None:
                        n.start_soon(lst.serve_udp, lst.udp_sock)
                    if lst.tcp_sock is not None:
                        n.start_soon(lst.serve_tcp, lst.tcp_sock)
        finally:
            done.set()

    async def stop_receiving(self, keys: set[tuple[str, int]] | None = None) -> None:
        """Stop reading the given sockets (all when None) and wait until their loops returned.

        Queries already read keep running to completion; only the reading stops.
        """
        if keys is None:
            self._stop_all = True
        waiting = []
        for key, (scope, done) in self._receivers.items():
            if keys is None or key in keys:
                scope.cancel()
                waiting.append(done)
        for done in waiting:
            await done.wait()

    async def final_shutdown(self) -> None:
        """The final-shutdown hooks alone (health's lameduck): on SIGTERM they run while the
        listeners still serve, before the drain and the ordinary shutdown hooks."""
        await self._run_hooks(self.scope.final_shutdown_hooks)

    async def shutdown(self, final: bool = False) -> None:
        await self._run_hooks(self.scope.shutdown_hooks + (self.scope.final_shutdown_hooks if final else []))

    @staticmethod
    async def _run_hooks(hooks: list[Hook]) -> None:
        for hook in hooks:
            try:
                await hook()
            except Exception as e:
                log.core.error(f"shutdown hook failed: {e}")

    def banner(self) -> list[str]:
        """`<zone>:<port>` per zone per listener, as CoreDNS prints at startup."""
        out = []
        for lst in self.listeners.values():
            for zone, _ in lst.zone_names:
                line = f"{zone}:{lst.bound_port}"
                if lst.transport != "dns":
                    line = f"{lst.transport}://{line}"
                if lst.host:
                    line += f" on {lst.host}"
                out.append(line)
        return out

    def first_listener(self) -> Listener:
        return next(iter(self.listeners.values()))
