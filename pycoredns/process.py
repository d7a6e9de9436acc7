"""The running program: loads a configuration, serves it, swaps it on reload, shuts down gracefully.

Things that must outlive one configuration live here: listening sockets (handed from the old
configuration to the new one without closing, so no query is lost on reload), the HTTP servers of
health/ready/prometheus, and the metrics registry.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from dnslib import DNSRecord

from . import directives, handover, log, metrics, wire
from .context import ConfigScope
from .corefile import CorefileError, fingerprint, parse
from .exceptions import ConfigError, StartupError
from .http import HTTPServer, split_address
from .instance import Instance
from .lastgood import LastGood, Recorder
from .loader import Loader
from .pod import Pod
from .request import Request
from .server import bind_tcp, bind_udp, socket_key

GRACEFUL_TIMEOUT = 5.0



class SocketPool:
    """Listening sockets by `Listener.socket_key`, reused across reloads: a dns:// listener's UDP and
    TCP sockets, a tls:// listener's TCP one (so a reload closes no listener and resets nothing)."""

    def __init__(self) -> None:
        self.socks: dict[tuple[str, int], tuple[socket.socket | None, socket.socket]] = {}

    def take(self, transport: str, host: str, port: int) -> tuple[socket.socket | None, socket.socket]:
        key = socket_key(transport, host, port)
        if key in self.socks:
            return self.socks[key]
        pair: tuple[socket.socket | None, socket.socket]
        if transport != "dns":
            pair = (None, bind_tcp(host, port))
        elif port == 0:
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
        """A free port for UDP and TCP alike, shared with no other socket (`server._bind`)."""
        for _ in range(50):
            udp = bind_udp(host, 0)
            try:
                tcp = bind_tcp(host, udp.getsockname()[1], shared=False)
            except OSError:
                udp.close()
                continue
            return udp, tcp
        raise OSError("could not find a free port for UDP and TCP")

    def keep_only(self, keys: set[tuple[str, int]]) -> None:
        for key in list(self.socks):
            if key not in keys:
                for s in self.socks.pop(key):
                    if s is not None:
                        s.close()

    def close(self) -> None:
        self.keep_only(set())


class Process:
    """A pycoredns server process (or an embedded server inside a trio program)."""

    def __init__(self, loader: Loader, *, dns_port: int = 53, quiet: bool = False,
                 pidfile: str | None = None, out: Callable[[str], None] | None = None,
                 lastgood: str | None = None) -> None:
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
        self._retiring: set[Instance] = set()
        self._starting: Instance | None = None  # being activated (under the reload lock): its sockets are in use
        self.exit_code = 0
        self.shared: dict[str, Any] = {}  # process-wide plugin state (e.g. reload's poller)
        self.pod: Pod | None = None  # -workers N: HTTP routes answer for every worker (pycoredns.pod)
        self.status_detail = ""  # shown by /ready with its OK (the last-known-good fallback)
        self.lastgood = LastGood(lastgood) if lastgood else None
        self._disk_error = ""  # why the configuration on disk failed while running on the stored one

    # -- loading -------------------------------------------------------------------------------
    def read_config(self) -> tuple[str, str]:
        """The loader's (text, filename); any failure becomes a StartupError (never a traceback)."""
        try:
            return self.loader()
        except StartupError:
            raise
        except Exception as e:
            raise StartupError(f"loading Corefile: {e}") from None

    def load(self, source: tuple[str, str] | None = None,
             read_file: Callable[[str], str] | None = None) -> Instance:
        """Read, parse and set up the configuration. Raises StartupError with CoreDNS's message.

        Every imported file is read through a recorder so a last-known-good snapshot can hold the
        exact contents this configuration was built from; `read_file` replays stored contents.
        """
        text, filename = source if source is not None else self.read_config()
        reader = Recorder(read_file)
        try:
            try:
                blocks = parse(text, filename, directives=directives.directives(entry_points=False), read_file=reader)
            except CorefileError:
                if directives.entry_points_loaded():
                    raise
                blocks = parse(text, filename, directives=directives.directives(), read_file=reader)
        except CorefileError as e:
            raise StartupError(str(e)) from None
        except Exception as e:  # a parser bug must not take a running server down
            raise StartupError(f"{filename}: {type(e).__name__}: {e}") from None
        inst = Instance(self, blocks, filename, dns_port=self.dns_port, take_sockets=self.sockets.take)
        inst.scope.fingerprint = inst.scope.watch_hash = fingerprint(blocks)
        inst.source = (text, filename, reader.files)
        try:
            inst.setup()
        except StartupError:
            raise
        except Exception as e:  # e.g. a plugin module that fails to import: never crash a running server
            raise StartupError(f"setup failed: {type(e).__name__}: {e}") from None
        return inst

    # -- running -------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Process] = trio.TASK_STATUS_IGNORED) -> None:
        """Load, start and serve until `stop()`; StartupError if the first configuration fails."""
        failure: StartupError | None = None
        try:
            async with trio.open_nursery() as root:
                self._root = root
                if self.pod is not None:
                    await root.start(self.pod.serve)
                try:
                    inst = await self._start_first()
                except StartupError as e:
                    failure = e  # raised below, outside the nursery: callers see it unwrapped
                    root.cancel_scope.cancel()
                    return
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
            if failure is not None:
                raise failure

    async def _start_first(self) -> Instance:
        """The configuration on disk, or (opt-in) the last known good one when that fails."""
        try:
            inst = self.load()
            await self._activate(inst, old=None)
            return inst
        except StartupError as e:
            if self.lastgood is None:
                raise
            return await self._fallback(e)  # re-raises `e` when there is nothing usable

    async def _fallback(self, error: StartupError) -> Instance:
        """Start on the stored configuration after the disk one failed with `error` (re-raised when
        there is no usable snapshot or it fails too)."""
        assert self.lastgood is not None
        path = self.lastgood.path
        try:
            snap = self.lastgood.load()
        except FileNotFoundError:
            log.core.error(f"{error}: no last known good configuration in {path}")
            raise error from None
        except (OSError, ValueError) as e:
            log.core.error(f"{error}: cannot read the last known good configuration {path}: {e}")
            raise error from None
        log.core.error(f"{error}: starting with last known good configuration from {path} "
                       f"(saved {snap.saved}, SHA512 = {snap.sha512})")
        self._disk_error = str(error)
        try:
            inst = self.load((snap.text, snap.filename), read_file=snap.read_file)
        except StartupError as e:
            log.core.error(f"The last known good configuration failed too: {e}")
            raise error from None
        if inst.fingerprint != snap.sha512:
            log.core.warning("The last known good configuration differs from the stored one "
                             "(files matched by an import glob changed); serving it anyway")
        inst.from_lastgood = True
        inst.scope.watch_hash = self._disk_hash()
        if not inst.scope.watches_source:
            log.core.warning("The last known good configuration has no reload: fix the Corefile, then send SIGUSR1")
        try:
            await self._activate(inst, old=None)
        except StartupError as e:
            log.core.error(f"The last known good configuration failed too: {e}")
            raise error from None
        return inst

    def _disk_hash(self) -> str:
        """The fingerprint of the failed disk configuration (reload retries only once it changes);
        empty when it does not even parse, so the first parseable edit is tried."""
        try:
            text, filename = self.read_config()
            return fingerprint(parse(text, filename, directives=None))
        except Exception:  # StartupError, CorefileError, anything a broken file can raise
            return ""

    def _lastgood_activated(self, inst: Instance) -> None:
        """A configuration is serving: store it (from disk), or flag the fallback (from the store)."""
        store = self.lastgood
        assert store is not None
        if inst.from_lastgood:
            store.mark_active(True, inst.fingerprint)
            self.status_detail = (
                f"running the last known good configuration (SHA512 {inst.fingerprint}) from {store.path}: "
                f"the Corefile on disk failed: {self._disk_error}")
            return
        if store.active:
            log.core.info("The Corefile on disk loaded: no longer running the last known good configuration")
            store.mark_active(False)
            self._disk_error = self.status_detail = ""
        assert inst.source is not None
        text, filename, files = inst.source
        store.save(text, filename, files, inst.fingerprint)

    async def _activate(self, inst: Instance, old: Instance | None) -> None:
        """Start `inst` while `old` serves, then hand the listeners over.

        Order matters for a lossless swap: the new configuration runs its startup hooks and takes
        its sockets first (failures leave `old` untouched); then `old` stops reading only the
        sockets both share (two loops must never wait on one fd; the kernel queues meanwhile); the
        new loops start; only then does `old` stop reading ports the new configuration dropped.
        Those sockets are closed after `old` has drained (`_retire`).
        """
        assert self._root is not None
        self._starting = inst
        try:
            await self._root.start(self._run_instance, inst)
        except StartupError:
            self._starting = None
            self._release_sockets()
            raise
        try:
            created = self._bind_http(inst)
        except StartupError:
            self._starting = None
            await self._abort(inst)
            raise
        if old is not None:
            await old.stop_receiving(inst.socket_keys() & old.socket_keys())
        wanted = {addr for addr, _ in inst.scope.routes}
        for srv in created:
            self.http[srv.address] = srv
            self._root.start_soon(srv.serve)
        for srv in self.http.values():
            srv.routes = {}
        for (addr, path), fn in inst.scope.routes.items():
            self.http[addr].routes[path] = self.pod.route(addr, path, fn) if self.pod is not None else fn
        for addr in [a for a in self.http if a not in wanted]:
            self.http.pop(addr).close()
        inst.go.set()
        await inst.serving.wait()
        self.instance = inst
        self._starting = None
        if old is not None:
            self._retiring.add(old)
            await old.stop_receiving()
        for hook in inst.scope.activated_hooks:
            try:
                hook()
            except Exception as e:
                log.core.error(f"activation hook failed: {type(e).__name__}: {e}")
        if self.lastgood is not None:
            self._lastgood_activated(inst)

    def _bind_http(self, inst: Instance) -> list[HTTPServer]:
        """Bind new HTTP addresses before the swap, so a busy port fails the reload cleanly."""
        created: list[HTTPServer] = []
        for addr in dict.fromkeys(a for a, _ in inst.scope.routes):
            if addr in self.http:
                continue
            try:
                host, port = split_address(addr, 0)
                srv = HTTPServer(addr, host, port)
                srv.bind()
            except (OSError, ValueError) as e:
                for c in created:
                    c.close()
                reason = e.strerror if isinstance(e, OSError) and e.strerror else e
                raise StartupError(f"listen tcp {addr}: {reason}") from None
            created.append(srv)
        return created

    async def _abort(self, inst: Instance) -> None:
        """Undo a started configuration that will not serve: its shutdown hooks, its task, its sockets."""
        with trio.CancelScope(shield=True), trio.move_on_after(GRACEFUL_TIMEOUT):
            await inst.shutdown(final=False)
        inst.stopped.set()
        inst.go.set()
        self._release_sockets()

    def _release_sockets(self) -> None:
        """Close pooled sockets no running or draining configuration uses."""
        live = [self.instance, self._starting, *self._retiring]
        keys: set[tuple[str, int]] = set()
        for i in live:
            if i is not None:
                keys |= i.socket_keys()
        self.sockets.keep_only(keys)

    async def _run_instance(self, inst: Instance, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failure: StartupError | None = None
        async with trio.open_nursery() as n:
            try:
                await inst.start(n)
                inst.bind()
            except Exception as e:
                failure = _startup_error(inst, e)
                n.cancel_scope.cancel()  # its background tasks
            else:
                task_status.started()
                await inst.go.wait()
                if not inst.stopped.is_set():
                    await n.start(inst.serve)
                    await inst.stopped.wait()
                n.cancel_scope.cancel()
        if failure is not None:  # raised outside the nursery, so start() sees it unwrapped
            await self._shutdown_failed(inst)
            raise failure

    @staticmethod
    async def _shutdown_failed(inst: Instance) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(GRACEFUL_TIMEOUT):
            await inst.shutdown(final=False)

    async def restart(self) -> str | None:
        """Load the configuration again and swap it in: None on success, else why it failed.

        On any failure the old configuration keeps serving, untouched.
        """
        async with self._reload_lock:
            if self.shutting_down or self._root is None:
                return "shutting down"
            log.core.info("Reloading")
            old = self.instance
            try:
                inst = self.load()
                await self._activate(inst, old)
            except StartupError as e:
                log.core.error(f"Restart failed: {e}")
                return str(e)
            if old is not None:
                self._root.start_soon(self._retire, old)
            log.core.info("Reloading complete")
            return None

    async def reload(self) -> bool:
        """Reload (SIGUSR1, the reload plugin, embedders); False when the old configuration stayed."""
        return await self.restart() is None

    async def _retire(self, old: Instance) -> None:
        """Drain first, then the shutdown hooks: queries in flight still have their upstream
        connections (forward closes them in its hook) and caches."""
        try:
            await self._drain(old)
            await old.shutdown(final=False)
        finally:
            old.stopped.set()
            self._retiring.discard(old)
            self._release_sockets()

    async def _drain(self, inst: Instance) -> None:
        """Close idle TCP connections, then wait (bounded) for queries in flight and busy connections."""
        for lst in inst.listeners.values():
            lst.retire_tcp()
        with trio.move_on_after(GRACEFUL_TIMEOUT):
            while any(lst.inflight or lst.tcp_limit.borrowed_tokens for lst in inst.listeners.values()):
                await trio.sleep(0.01)

    def request_reload(self) -> None:
        """Reload soon, in the background (SIGUSR1)."""
        if self._root is not None and self.started.is_set():
            self._root.start_soon(self.reload)

    def start_background(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a process-wide task that outlives configurations (reload's poller)."""
        assert self._root is not None
        self._root.start_soon(fn, *args)

    def stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM): hooks, lameduck, then listeners."""
        self._stop.set()

    async def _shutdown(self) -> None:
        """SIGTERM: lameduck while serving, hand the addresses over, answer everything accepted, exit.

        The final-shutdown hooks (health's lameduck) run while the listeners still serve. Then each
        UDP socket with a successor on its address is withdrawn from its reuseport group
        (`pycoredns.handover`), the receive loops stop, the queued datagrams and queries in flight
        are answered, and each socket closes as soon as it is empty. TCP listeners, DoT ones
        included, hand what the kernel holds for them over (`handover.finish_tcp`). The ordinary shutdown hooks
        (forward closing its upstream connections) run last, after the last forwarded answer.
        """
        self.shutting_down = True
        async with self._reload_lock:  # a reload in progress finishes first
            inst = self.instance
        if inst is None:
            return
        await inst.final_shutdown()
        for lst in inst.listeners.values():
            # dns://: the UDP socket withdrawn; tls:// (TCP only): `handover.finish_tcp` below
            handed = (handover.withdraw(lst.udp_sock) if lst.udp_sock is not None
                      else lst.tcp_sock is not None and handover.has_successor(lst.tcp_sock))
            if handed:
                log.core.info(f"Handing {lst.label} over to its successor")
        await inst.stop_receiving()
        await self._finish(inst)
        await inst.shutdown(final=False)
        inst.stopped.set()

    async def _finish(self, inst: Instance) -> None:
        """Stop accepting, answer every datagram queued and every query in flight, close (bounded)."""
        deadline = trio.current_time() + GRACEFUL_TIMEOUT
        for lst in inst.listeners.values():
            lst.retire_tcp()
        async with trio.open_nursery() as n:
            for lst in inst.listeners.values():
                if lst.tcp_sock is not None:
                    n.start_soon(handover.finish_tcp, lst, lst.tcp_sock, deadline)
                if lst.udp_sock is not None:
                    n.start_soon(handover.finish_udp, lst, lst.udp_sock, deadline)
        with trio.move_on_at(deadline):
            while any(lst.inflight or lst.tcp_limit.borrowed_tokens for lst in inst.listeners.values()):
                await trio.sleep(0.01)

    # -- what plugins see (pycoredns.context.Runtime) --------------------------------------------
    def serving_scope(self) -> ConfigScope | None:
        return self.instance.scope if self.instance is not None else None

    def remove_http_route(self, address: str, path: str) -> None:
        srv = self.http.get(address)
        if srv is not None:
            srv.routes.pop(path, None)
            if not srv.routes:
                srv.close()

    def _write_pidfile(self) -> None:
        if not self.pidfile:
            return
        try:
            with open(self.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:
            log.core.error(f"Could not write pidfile: {e}")

    async def resolve(self, name: str, qtype: str | int = "A", *, qclass: int = 1,
                      client: tuple[str, int] = ("127.0.0.1", 0)) -> DNSRecord:
        """In-process query through the first listener's routing and chains, without a socket:
        a dnslib DNSRecord reply."""
        t = qtype if isinstance(qtype, int) else wire.type_value(qtype)
        if t is None:
            raise ValueError(f"unknown type {qtype}")
        q = DNSRecord.question(name, "A")
        q.q.qtype = t
        q.q.qclass = qclass
        assert self.instance is not None
        listener = self.instance.first_listener()
        req = Request(q.pack(), client, "udp", (listener.host, listener.port), listener)
        reply = await listener.resolve(req)
        assert reply is not None
        return wire.to_record(reply)

    def port(self, proto: str = "udp") -> int:
        """The bound port of the first listener (useful with port 0)."""
        assert self.instance is not None
        lst = self.instance.first_listener()
        sock = lst.udp_sock if proto == "udp" else lst.tcp_sock
        assert sock is not None
        return int(sock.getsockname()[1])


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


def _startup_error(inst: Instance, e: Exception) -> StartupError:
    """What a failed startup hook or bind reads like (never a traceback)."""
    if isinstance(e, StartupError):
        return e
    if isinstance(e, OSError):
        return StartupError(_listen_error(inst, e))
    if isinstance(e, (CorefileError, ConfigError)):
        return StartupError(str(e))
    return StartupError(f"startup failed: {type(e).__name__}: {e}")


def _pyver() -> str:
    import platform

    return platform.python_version()
