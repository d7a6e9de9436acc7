"""The running program: loads a configuration, serves it, swaps it on reload, shuts down gracefully.

Things that must outlive one configuration live here: listening sockets (handed from the old
configuration to the new one without closing, so no query is lost on reload), the HTTP servers of
health/ready/prometheus, and the metrics registry.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import trio

from . import directives, log, metrics
from .corefile import CorefileError, fingerprint, parse
from .http import HTTPServer, split_address
from .instance import Instance, StartupError
from .server import bind_tcp, bind_udp

GRACEFUL_TIMEOUT = 5.0

Loader = Callable[[], tuple[str, str]]
"""Returns (Corefile text, file name for messages); raises StartupError when it cannot."""


class SocketPool:
    """Listening sockets by (host, configured port), reused across reloads."""

    def __init__(self) -> None:
        self.socks: dict[tuple[str, int], tuple[socket.socket, socket.socket]] = {}

    def take(self, host: str, port: int) -> tuple[socket.socket, socket.socket]:
        key = (host, port)
        if key in self.socks:
            return self.socks[key]
        if port == 0:
            pair = self._bind_ephemeral(host)
        else:
            udp = bind_udp(host, port)
            try:
                tcp = bind_tcp(host, port)
            except BaseException:
                udp.close()
                raise
            pair = (udp, tcp)
        self.socks[key] = pair
        return pair

    @staticmethod
    def _bind_ephemeral(host: str) -> tuple[socket.socket, socket.socket]:
        for _ in range(50):
            udp = bind_udp(host, 0)
            try:
                tcp = bind_tcp(host, udp.getsockname()[1])
            except OSError:
                udp.close()
                continue
            return udp, tcp
        raise OSError("could not find a free port for UDP and TCP")

    def keep_only(self, keys: set[tuple[str, int]]) -> None:
        for key in list(self.socks):
            if key not in keys:
                for s in self.socks.pop(key):
                    s.close()

    def close(self) -> None:
        self.keep_only(set())


class Process:
    """A pycoredns server process (or an embedded server inside a trio program)."""

    def __init__(self, loader: Loader, *, dns_port: int = 53, quiet: bool = False,
                 pidfile: str | None = None, out: Callable[[str], None] | None = None) -> None:
        self.loader = loader
        self.dns_port = dns_port
        self.quiet = quiet
        self.pidfile = pidfile
        self.out = out or (lambda line: print(line, flush=True))
        self.sockets = SocketPool()
        self.http: dict[str, HTTPServer] = {}
        self.instance: Instance | None = None
        self.registry = metrics.REGISTRY
        self.started = trio.Event()
        self.shutting_down = False
        self._root: trio.Nursery | None = None
        self._reload_lock = trio.Lock()
        self._stop = trio.Event()
        self.exit_code = 0
        self.shared: dict[str, Any] = {}  # process-wide plugin state (e.g. reload's poller)

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> Instance:
        """Read, parse and set up the configuration. Raises StartupError with CoreDNS's message."""
        text, filename = self.loader()
        try:
            blocks = parse(text, filename, directives=directives.directives())
        except CorefileError as e:
            raise StartupError(str(e)) from None
        inst = Instance(self, blocks, filename)
        inst.fingerprint = fingerprint(blocks)
        inst.setup()
        return inst

    # -- running -------------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Load, start and serve until `stop()`; StartupError if the first configuration fails."""
        try:
            await self._run(task_status)
        except BaseExceptionGroup as eg:
            leaf = _only_leaf(eg)
            if isinstance(leaf, StartupError):
                raise leaf from None
            raise

    async def _run(self, task_status) -> None:
        try:
            async with trio.open_nursery() as root:
                self._root = root
                inst = self.load()
                await self._activate(inst, old=None)
                if not self.quiet:
                    for line in inst.banner():
                        self.out(line)
                    from . import COREDNS_VERSION, __version__

                    self.out(f"CoreDNS-{COREDNS_VERSION}")
                    self.out(f"linux/{os.uname().machine}, python{_pyver()}, pycoredns-{__version__}")
                self._write_pidfile()
                self.started.set()
                task_status.started(self)
                await self._stop.wait()
                await self._shutdown()
                root.cancel_scope.cancel()
        finally:
            self.sockets.close()
            for srv in self.http.values():
                srv.close()
            self.http.clear()

    async def _activate(self, inst: Instance, old: Instance | None) -> None:
        """Start `inst` while `old` serves, then hand the listeners over."""
        assert self._root is not None
        await self._root.start(self._run_instance, inst)
        # Bind new HTTP addresses before the swap, so a busy port fails the reload cleanly.
        wanted = {addr for addr, _, _ in inst.http_routes}
        created = []
        try:
            for addr in wanted:
                if addr not in self.http:
                    host, port = split_address(addr, 0)
                    srv = HTTPServer(addr, host, port)
                    srv.bind()
                    created.append(srv)
        except OSError as e:
            for srv in created:
                srv.close()
            inst.stopped.set()
            raise StartupError(f"listen tcp {addr}: {e.strerror or e}") from None
        if old is not None:
            old.stop_receiving()
            await old.receive_done.wait()
        for srv in created:
            self.http[srv.address] = srv
            self._root.start_soon(srv.serve)
        for srv in self.http.values():
            srv.routes = {}
        for addr, path, fn in inst.http_routes:
            self.http[addr].routes[path] = fn
        for addr in [a for a in self.http if a not in wanted]:
            self.http.pop(addr).close()
        inst.go.set()
        await inst.serving.wait()
        self.instance = inst
        self.sockets.keep_only({(lst.host, lst.port) for lst in inst.listeners.values()})

    async def _run_instance(self, inst: Instance, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as n:
            await inst.start(n)
            try:
                inst.bind()
            except OSError as e:
                raise StartupError(_listen_error(inst, e)) from None
            task_status.started()
            await inst.go.wait()
            await n.start(inst.serve)
            await inst.stopped.wait()
            n.cancel_scope.cancel()

    async def reload(self) -> bool:
        """Load the configuration again and swap it in; on any failure the old one keeps serving."""
        async with self._reload_lock:
            if self.shutting_down:
                return False
            log.core.info("Reloading")
            old = self.instance
            try:
                inst = self.load()
                await self._activate(inst, old)
            except StartupError as e:
                log.core.error(f"Restart failed: {e}")
                log.plugin_logger("reload").error(f"Corefile changed but reload failed: {e}")
                reload_failed_total.inc()
                return False
            if old is not None:
                self._root.start_soon(self._retire, old)  # type: ignore[union-attr]
            log.core.info("Reloading complete")
            return True

    async def _retire(self, old: Instance) -> None:
        await old.shutdown(final=False)
        await self._drain(old)
        old.stopped.set()

    async def _drain(self, inst: Instance) -> None:
        with trio.move_on_after(GRACEFUL_TIMEOUT):
            while any(lst.inflight for lst in inst.listeners.values()):
                await trio.sleep(0.01)

    def request_reload(self) -> None:
        """Reload soon, in the background (SIGUSR1, the reload plugin)."""
        if self._root is not None and self.started.is_set():
            self._root.start_soon(self.reload)

    def stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM): hooks, lameduck, then listeners."""
        self._stop.set()

    async def _shutdown(self) -> None:
        self.shutting_down = True
        inst = self.instance
        if inst is None:
            return
        await inst.shutdown(final=True)
        inst.stop_receiving()
        await self._drain(inst)
        inst.stopped.set()

    # -- helpers for plugins ---------------------------------------------------------------------
    def log_error(self, msg: str) -> None:
        log.core.error(msg)

    def _write_pidfile(self) -> None:
        if not self.pidfile:
            return
        try:
            with open(self.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            log.core.error(f"Could not write pidfile: {e}")

    async def resolve(self, name: str, qtype: str | int = "A", **kw):
        """In-process query (no sockets): a dnslib DNSRecord reply."""
        from .embed import resolve

        return await resolve(self, name, qtype, **kw)

    def port(self, proto: str = "udp") -> int:
        """The bound port of the first listener (useful with port 0)."""
        assert self.instance is not None
        lst = self.instance.first_listener()
        sock = lst.udp_sock if proto == "udp" else lst.tcp_sock
        assert sock is not None
        return sock.getsockname()[1]


reload_failed_total = metrics.REGISTRY.counter(
    "coredns_reload_failed_total", "Counter of the number of failed reload attempts.")


def _only_leaf(eg: BaseExceptionGroup) -> BaseException | None:
    """The single exception inside (possibly nested) groups, or None when there are several."""
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def _listen_error(inst: Instance, e: OSError) -> str:
    return f"listen: {e.strerror or e}"


def _pyver() -> str:
    import platform

    return platform.python_version()
