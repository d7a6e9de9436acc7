"""List+watch on kubernetes-asyncio in its own thread, feeding reduced objects into trio.

The server runs on trio, the client on asyncio. Rather than mixing loops, the client gets a dedicated
asyncio event loop in a daemon thread. Each watched kind runs one task there: list (in pages of 500),
then watch from the list's resourceVersion with bookmarks, resume from the last resourceVersion seen
when a stream ends or breaks, relist when the server says 410 Gone, back off on errors. Objects are
reduced in that thread (JSON parse + reduce, the expensive part stays off the DNS loop) and appended
to a pending batch; the first append of a batch schedules one `drain` on the trio loop with
`TrioToken.run_sync_soon` (thread-safe, non-blocking). The drain applies the whole batch in one go,
so a 50,000-endpoint initial list rebuilds each service once, not once per slice.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from pycoredns.log import plugin_logger

from . import client, objects

log = plugin_logger("kubernetes")
_DECODER = json.JSONDecoder()

POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
PAGE = 500
MAX_BACKOFF = 3.0  # seconds between retries at most (x1.5 jitter): an outage ends within ~4.5 s of recovery
# A watch asks the server to end it after timeoutSeconds, drawn from this range as client-go's reflector
# does (minWatchTimeout 5 min, x1 to x2). A stream silent for WATCH_GRACE seconds longer than that (no
# event, no bookmark, not ended) is dropped and watched again from the last resourceVersion: client-go
# keeps no such deadline of its own and waits for the server to end the stream.
WATCH_TIMEOUT = (300, 600)
WATCH_GRACE = 30.0
Event = tuple  # ("replace", kind, [(key, obj)]) | ("upsert", kind, key, obj) | ("delete", kind, key)
#                | ("synced", kind) | ("request", verb, code, host, seconds, wait)


@dataclass
class Connection:
    """How to reach the API: kubeconfig [context], endpoint URL [+ tls], or in-cluster."""

    kubeconfig: str = ""
    context: str = ""
    endpoint: str = ""
    tls: tuple[str, str, str] | None = None
    qps: float = 0.0
    burst: int = 0
    max_inflight: int = 0


@dataclass
class KindSpec:
    name: str  # namespaces, services, endpointslices, pods
    label_selector: str = ""
    field_selector: str = ""
    reduce: Callable[[Any], Any] = field(default=objects.reduce_service)


def _noop() -> None:
    pass


class Gone(Exception):
    """410: the resourceVersion is too old; relist."""


class _Limiter:
    """Token bucket for apiserver_qps/apiserver_burst (client-go's default flow control)."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.tokens = float(max(burst, 1))
        self.burst = float(max(burst, 1))
        self.stamp = time.monotonic()

    async def wait(self) -> float:
        if self.qps <= 0:
            return 0.0
        started = time.monotonic()
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return time.monotonic() - started
            await asyncio.sleep((1 - self.tokens) / self.qps)


_gc_lock = threading.Lock()
_gc_holds = 0  # lists running (in any watcher thread) with the collector paused
_gc_was_on = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while a list decodes: its pages are millions of short-lived dicts
    and lists (freed by reference counting), and each collection walked them again (~0.3 s of a
    5k x 10 start at load 8: 4 collections). Counted, so overlapping lists resume it once."""
    global _gc_holds, _gc_was_on
    with _gc_lock:
        if _gc_holds == 0:
            _gc_was_on = gc.isenabled()
            gc.disable()
        _gc_holds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holds -= 1
            if _gc_holds == 0 and _gc_was_on:
                gc.enable()


def _key(obj: Any) -> tuple[str, str] | None:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(md, dict) or not isinstance(md.get("name"), str):
        return None
    return (md.get("namespace") or ""), md["name"]


def _head_continue(body: bytes) -> str:
    """The list's `continue` token from the head of a list body ("" when there is none or it is not there)."""
    at = body.find(b'"metadata":', 0, 1024)
    if at < 0:
        return ""
    try:
        md, _ = _DECODER.raw_decode(body[at + 11:at + 11 + 16384].decode("utf-8", "replace").lstrip())
    except ValueError:
        return ""
    cont = md.get("continue") if isinstance(md, dict) else None
    return cont if isinstance(cont, str) else ""


def _drop(task: asyncio.Future[Any]) -> None:
    """Cancel a GET that is not needed (any outcome it already has is retrieved, never reported)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _rv(obj: Any) -> str | None:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    rv = md.get("resourceVersion") if isinstance(md, dict) else None
    return rv if isinstance(rv, str) and rv else None


class Watcher:
    """Owns the asyncio thread; `post`ed events reach `deliver(batch)` on the trio loop."""

    def __init__(self, conn: Connection, kinds: list[KindSpec], deliver: Callable[[list[Event]], None]) -> None:
        self.conn = conn
        self.kinds = kinds
        self.deliver = deliver
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main: asyncio.Task | None = None
        self._sent = client.SentRequests()
        self.host = ""

    # -- bridge -------------------------------------------------------------------------------
    def post(self, ev: Event) -> None:
        """Called from the asyncio thread: queue an event, wake trio once per batch."""
        with self._lock:
            self._pending.append(ev)
            if self._scheduled or self._token is None:
                return
            self._scheduled = True
        try:
            self._token.run_sync_soon(self._drain)
        except trio.RunFinishedError:
            self._orphaned()

    def _orphaned(self) -> None:
        """The trio run we fed is gone without stopping us (a failed startup): end the watches."""
        if self._main is not None:
            self._main.cancel()

    def alive(self) -> bool:
        """False once the trio run is over; checked on every retry so an orphan thread ends."""
        token = self._token
        if token is None:
            return False
        try:
            token.run_sync_soon(_noop)
        except trio.RunFinishedError:
            return False
        return True

    def _drain(self) -> None:
        """Runs on the trio loop (outside any task): must never raise."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        try:
            self.deliver(batch)
        except Exception as e:  # a bug here must not take the DNS loop down
            log.error(f"applying {len(batch)} API events failed: {e!r}")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread; must be called from trio (the token is taken here)."""
        self._token = trio.lowlevel.current_trio_token()
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._main = loop.create_task(self._run())
            started.set()
            try:
                loop.run_until_complete(self._main)
            except (asyncio.CancelledError, Exception):
                pass
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="kubernetes-watch", daemon=True)
        self._thread.start()
        started.wait(5)

    def stop(self) -> None:
        """Cancel the watches; blocking join (call through trio.to_thread)."""
        loop, main = self._loop, self._main
        if loop is not None and main is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(main.cancel)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10)
        self._token = None

    # -- asyncio side ------------------------------------------------------------------------
    async def _client(self) -> Any:
        Configuration, ApiClient, config = client.modules()
        cfg = Configuration()
        if self.conn.kubeconfig:
            await config.load_kube_config(self.conn.kubeconfig, context=self.conn.context or None,
                                          client_configuration=cfg)
        elif self.conn.endpoint:
            cfg.host = self.conn.endpoint
            if self.conn.tls:
                cfg.cert_file, cfg.key_file, cfg.ssl_ca_cert = self.conn.tls
        else:
            config.load_incluster_config(client_configuration=cfg)
        if self.conn.max_inflight:
            cfg.connection_pool_maxsize = self.conn.max_inflight
        self.host = cfg.host.split("://", 1)[-1]
        return client.api_client(ApiClient, cfg, self._sent)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                api = await self._client()
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not self.alive():
                    return
                log.error(f"cannot configure the Kubernetes client: {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        limiter = _Limiter(self.conn.qps, self.conn.burst)
        try:
            await asyncio.gather(*(self._kind(api, k, limiter) for k in self.kinds))
        finally:
            await api.close()

    async def _call(self, api: Any, spec: KindSpec, limiter: _Limiter, params: dict[str, Any],
                    timeout: tuple[float, float]) -> Any:
        """One GET of the kind's list path with the rate limiter, error mapping and the client metrics.

        Lists and watches are both HTTP GETs; like client-go's metrics, the verb label says "GET".
        """
        verb = "GET"
        if spec.label_selector:
            params["labelSelector"] = spec.label_selector
        if spec.field_selector:
            params["fieldSelector"] = spec.field_selector
        wait = await limiter.wait()
        started = time.monotonic()
        resp = await client.get(api, client.LIST_PATHS[spec.name], list(params.items()), timeout)
        self.post(("request", verb, str(resp.status), self.host, time.monotonic() - started, wait))
        if resp.status == 410:
            resp.release()
            raise Gone()
        if resp.status != 200:
            body = (await resp.read())[:200]
            raise RuntimeError(f"HTTP {resp.status}: {body.decode(errors='replace')}")
        return resp

    async def _page(self, api: Any, spec: KindSpec, limiter: _Limiter, cont: str) -> bytes:
        """One page of a list: the raw body."""
        # (connect, read) timeouts: a hung API server must not stall the list forever
        params: dict[str, Any] = {"limit": PAGE}
        if cont:
            params["continue"] = cont
        resp = await self._call(api, spec, limiter, params, (10, 60))
        try:
            return await resp.read()  # type: ignore[no-any-return]
        finally:
            resp.release()

    async def _list(self, api: Any, spec: KindSpec, limiter: _Limiter) -> tuple[list, str]:
        """List in pages of PAGE (limit/continue, as client-go's pager); objects reduced as they arrive.

        The next page is asked for before this one is decoded, with the `continue` token read from the
        head of the body (`_head_continue`; the API server writes the list's metadata before its items),
        so the server builds it while this thread decodes: 5k x 10 listed ~15-30 % sooner against the
        API test server. The token of the full decode decides: a different one (or none read ahead)
        drops the early request and asks again, as the plain pager would.
        """
        items: list[tuple[tuple[str, str], Any]] = []
        rv = ""
        get = asyncio.ensure_future(self._page(api, spec, limiter, ""))
        try:
            for _ in range(100000):
                body = await get
                ahead = _head_continue(body)
                if ahead:
                    get = asyncio.ensure_future(self._page(api, spec, limiter, ahead))
                    await self._sent.until_sent(ahead, get)
                try:
                    data = json.loads(body)
                except ValueError as e:
                    raise RuntimeError(f"list {spec.name}: bad JSON: {e}") from None
                del body
                if not isinstance(data, dict):
                    raise RuntimeError(f"list {spec.name}: not an object list")
                for obj in data.get("items") or ():
                    key = _key(obj)
                    if key is not None:
                        items.append((key, spec.reduce(obj)))
                md = data.get("metadata") or {}
                rv = md.get("resourceVersion") or rv
                cont = md.get("continue") or ""
                if cont != ahead:
                    _drop(get)
                    if cont:
                        get = asyncio.ensure_future(self._page(api, spec, limiter, cont))
                if not cont:
                    break
        finally:
            _drop(get)
        return items, rv

    async def _kind(self, api: Any, spec: KindSpec, limiter: _Limiter) -> None:
        rv = ""
        backoff = 0.2
        synced = False
        while True:
            try:
                if not rv:
                    with collector_paused():
                        items, rv = await self._list(api, spec, limiter)
                    self.post(("replace", spec.name, items))
                    if not synced:
                        synced = True
                        self.post(("synced", spec.name))
                rv = await self._watch(api, spec, limiter, rv)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info(f"watch of {spec.name}: resourceVersion {rv} is gone, relisting")
                rv = ""
            except Exception as e:
                if not self.alive():
                    return
                log.warning(f"watch of {spec.name} failed (retrying in {backoff:.1f}s): {e or type(e).__name__}")
                await asyncio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _watch(self, api: Any, spec: KindSpec, limiter: _Limiter, rv: str) -> str:
        """Follow one watch stream; returns the resourceVersion to resume from."""
        timeout = random.randint(*WATCH_TIMEOUT)
        params: dict[str, Any] = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                                  "timeoutSeconds": timeout}
        idle = timeout + WATCH_GRACE
        resp = await self._call(api, spec, limiter, params, (10, idle + 5))
        try:
            while True:
                try:
                    line = await asyncio.wait_for(resp.content.readline(), idle)
                except TimeoutError:
                    log.warning(f"watch of {spec.name}: nothing received for {idle:.0f}s (its timeout was "
                                f"{timeout}s), watching again from resourceVersion {rv}")
                    return rv
                if not line:
                    return rv  # stream ended: resume
                try:
                    ev = json.loads(line)
                    etype, obj = ev["type"], ev["object"]
                except (ValueError, KeyError, TypeError):
                    raise RuntimeError(f"garbage in watch stream: {line[:80]!r}") from None
                if etype == "ERROR":
                    code = obj.get("code") if isinstance(obj, dict) else None
                    if code == 410:
                        raise Gone()
                    raise RuntimeError(f"watch error: {obj.get('message') if isinstance(obj, dict) else obj}")
                new_rv = _rv(obj)
                if etype == "BOOKMARK":
                    rv = new_rv or rv
                    continue
                key = _key(obj)
                if key is None:
                    continue
                if etype == "DELETED":
                    self.post(("delete", spec.name, key))
                elif etype in ("ADDED", "MODIFIED"):
                    self.post(("upsert", spec.name, key, spec.reduce(obj)))
                rv = new_rv or rv
        finally:
            resp.release()
