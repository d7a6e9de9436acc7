"""The HTTP side: an aiohttp server on its own thread and asyncio loop speaking the Kubernetes REST
protocol, plus the thread-safe test controls (drop watches, expire versions, go unreachable).

It runs in a thread so that trio tests, plain pytest and the CLI can all use it the same way, and
so the kubernetes-asyncio client under test (asyncio) never shares a loop with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import errors, kinds, tables
from .errors import APIError
from .kinds import Kind
from .loader import load_objects
from .patch import json_patch, merge_patch, strategic_merge_patch
from .selectors import (
    FieldReq,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Event, Obj, Store

log = logging.getLogger("pycoredns_conformance.apiserver")

_CLOSE = object()  # end the watch cleanly (final chunk)
_ABORT = object()  # the transport was aborted; just leave
# set_unreachable modes that answer every request with an error Status: (code, reason, message)
_FAILING = {
    "503": (503, "ServiceUnavailable", "the server is currently unable to handle the request"),
    "500": (500, "InternalError", "Internal error occurred: etcdserver: request timed out"),
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type="application/json")


@dataclass(eq=False)
class _Watcher:
    kind: Kind
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldReq]
    queue: asyncio.Queue[Any]
    last_rv: int = 0
    transport: asyncio.Transport | None = None
    table: bool = False
    include: str = "Metadata"
    sent_columns: bool = field(default=False)
    silenced: bool = False  # hold_watches: write nothing more, never end it (the client must give up)

    def match(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def translate(self, ev: Event) -> tuple[str, Obj] | None:
        """Map a store event to what this (selector-filtered) watch sees, like the watch cache."""
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if self.match(ev.obj) else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if self.match(ev.obj) else None
        now, before = self.match(ev.obj), self.match(ev.old)
        if now and before:
            return "MODIFIED", ev.obj
        if now:
            return "ADDED", ev.obj
        if before:
            return "DELETED", ev.obj
        return None


class APIServer:
    """A Kubernetes API server for tests: Namespaces, Services, Pods, Endpoints, EndpointSlices.

    ``start()`` binds (port 0 = ephemeral) and serves from a background thread; every other method
    is thread-safe and quick, so trio tests call them directly without awaiting.
    """

    def __init__(
        self,
        objects: Iterable[Obj] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        service_cidr: str = "10.240.16.0/20",
        service_cidr_v6: str = "fd00:10:240::/112",
        history_size: int = 10000,
        bookmark_interval: float = 5.0,
        watch_timeout: float = 1800.0,
        too_large_wait: float = 3.0,
        request_log: int = 1000,
        namespace_delay: float = 0.0,
    ) -> None:
        self.store = Store(service_cidr=service_cidr, service_cidr_v6=service_cidr_v6,
                           history_size=history_size, namespace_delay=namespace_delay)
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.too_large_wait = too_large_wait
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._watchers: set[_Watcher] = set()
        self._dispatched_rv = self.store.resource_version
        self._unreachable: str | None = None
        self._hold_watches = False
        self._stall_lists = False
        self._recover_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._requests: deque[tuple[str, str]] = deque(maxlen=request_log)
        self.store.subscribe(self._on_commit)
        objs = list(objects)
        if objs:
            self.store.load(objs)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid after start())."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> APIServer:
        """Bind and serve in a daemon thread; returns self once the socket listens."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._astart())
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._astop())
                loop.close()

        self._thread = threading.Thread(target=run, name="k8s-test-apiserver", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._thread = None

    def __enter__(self) -> APIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None and self._loop is not None
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        assert self._runner.server is not None
        self._server = await self._loop.create_server(self._runner.server, sock=sock)

    def _abort_connections(self) -> None:
        protos = self._runner.server.connections if self._runner and self._runner.server else []
        for proto in list(protos):
            tr = getattr(proto, "transport", None)
            if tr is not None:
                tr.abort()
        for w in list(self._watchers):
            w.queue.put_nowait(_ABORT)

    async def _astop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_connections()
        if self._runner is not None:
            await self._runner.cleanup()
        self._watchers.clear()
        self._unreachable = None
        self._loop = None

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the server loop and wait for it (directly when already on it)."""
        loop = self._loop
        if loop is None or self._thread is None or threading.current_thread() is self._thread:
            r = fn(*args)
            if asyncio.iscoroutine(r):
                if loop is None or self._thread is None:
                    r.close()
                    raise RuntimeError("the API server is not running (call start() first)")
                fut = asyncio.ensure_future(r)  # on the loop already: cannot wait, so schedule it
                self._tasks.add(fut)
                fut.add_done_callback(self._tasks.discard)
                return None
            return r

        async def wrap() -> Any:
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r

        return asyncio.run_coroutine_threadsafe(wrap(), loop).result(30)

    # ------------------------------------------------------------------ test controls

    def drop_watches(self, clean: bool = False) -> int:
        """End every open watch stream; returns how many. By default the TCP connection is aborted
        (what a client sees when an apiserver or load balancer dies); ``clean=True`` ends the
        chunked response properly instead, like a server-side watch timeout."""

        def do() -> int:
            n = 0
            for w in list(self._watchers):
                n += 1
                if not clean and w.transport is not None:
                    w.transport.abort()
                    w.queue.put_nowait(_ABORT)
                else:
                    w.queue.put_nowait(_CLOSE)
            return n

        return int(self._call(do))

    def expire_resource_versions(self) -> int:
        """Compact history: every resourceVersion handed out so far becomes 410 Gone for watches
        (and for continue tokens). Returns the new current resourceVersion."""
        return self.store.expire_resource_versions()

    def set_unreachable(self, unreachable: bool = True, mode: str = "refuse") -> None:
        """Make the API look down, or bring it back.

        mode ``refuse``: the listening socket is closed and every open connection aborted, so
        clients get ECONNREFUSED / connection reset, like a dead apiserver; on recovery the same
        port is bound again. mode ``503``: connections are accepted but every request (watches
        included) gets 503 ServiceUnavailable, like an overloaded or starting apiserver behind a
        load balancer; open connections are aborted. mode ``500``: the same with 500 InternalError
        (a failing apiserver or etcd)."""
        if mode not in ("refuse", "503", "500"):
            raise ValueError("mode must be 'refuse', '503' or '500'")

        async def do() -> None:
            if self._recover_handle is not None:
                self._recover_handle.cancel()
                self._recover_handle = None
            await self._set_unreachable_async(unreachable, mode)

        self._call(do)

    def hold_watches(self, hold: bool = True) -> int:
        """Silence watch streams: every stream open now, and every one opened while holding, keeps its
        connection but sends nothing more (no events, no bookmarks) and is not ended at its
        timeoutSeconds, like an apiserver or a proxy that stopped forwarding while the TCP connection
        stays up. The events they miss stay in the history: a client that gives up on a silent stream
        and watches again from its last resourceVersion catches up. ``hold_watches(False)``: watches
        opened afterwards work again; the silenced streams stay silent until the client drops them
        (or ``drop_watches``). Returns how many open streams were silenced."""

        def do() -> int:
            self._hold_watches = hold
            if not hold:
                return 0
            for w in self._watchers:
                w.silenced = True
            return len(self._watchers)

        return int(self._call(do))

    def stall_lists(self, stall: bool = True) -> None:
        """Lists (GET without watch) wait without answering while stalled; the client's read timeout
        decides what happens. ``stall_lists(False)``: the waiting lists are answered."""
        self._stall_lists = stall

    @property
    def unreachable(self) -> str | None:
        """The current unreachable mode, or None."""
        return self._unreachable

    def watch_count(self, kind: str | None = None) -> int:
        """Open watch streams, optionally of one kind (tests poll it to wait until a client watches)."""
        return sum(1 for w in list(self._watchers) if kind is None or w.kind.kind == kind)

    def requests(self) -> list[tuple[str, str]]:
        """The last requests served, oldest first, as (method, path with query), so tests can check
        what a client asked for (selectors, bookmarks, relists)."""
        return list(self._requests)

    # ------------------------------------------------------------------ cluster contents

    def create(self, obj: Obj) -> Obj:
        """Create an object (POST semantics; namespace defaults to ``default``)."""
        return self.store.create(obj)

    def update(self, obj: Obj) -> Obj:
        """Replace an object (PUT semantics; a stale metadata.resourceVersion is 409)."""
        return self.store.update(obj)

    def apply(self, obj: Obj) -> Obj:
        """Create or unconditionally replace."""
        return self.store.apply(obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> Obj:
        """Delete by kind (``Service``, ``EndpointSlice`` ...), namespace and name."""
        return self.store.delete(kind, namespace, name)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        """A copy of one object."""
        return self.store.get(kind, namespace, name)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of all objects of a kind."""
        return self.store.objects(kind, namespace)

    def load(self, objs: Iterable[Obj]) -> int:
        """Apply objects (namespaces first; missing namespaces created)."""
        return self.store.load(objs)

    def load_file(self, path: str | Path) -> int:
        """Load a YAML/JSON file (multi-document or List), or every such file in a directory."""
        return self.store.load(load_objects(path))

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self.store.resource_version

    def kubeconfig(self, namespace: str = "default") -> Obj:
        """A kubeconfig for this server (plain HTTP; the token is accepted and ignored)."""
        name = "pycoredns-test"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": "pycoredns-test-token"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
            "current-context": name,
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write kubeconfig() as YAML to ``path`` and return it."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return p

    # ------------------------------------------------------------------ event fan-out

    def _on_commit(self, ev: Event | None, rv: int) -> None:
        # Called under the store lock, in whatever thread committed: hand over to the loop in order.
        loop = self._loop
        if loop is None or loop.is_closed():
            self._dispatched_rv = rv
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._dispatch, ev, rv)

    def _dispatch(self, ev: Event | None, rv: int) -> None:
        self._dispatched_rv = rv
        if ev is None:
            return
        for w in self._watchers:
            if w.kind.kind == ev.kind:
                w.queue.put_nowait(ev)

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._requests.append((request.method, request.path_qs))
        try:
            if self._unreachable in _FAILING and not request.path.startswith("/_control/"):
                raise APIError(*_FAILING[self._unreachable])
            return await self._route(request)
        except APIError as e:
            return _json(e.status(), e.code)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug here must still look like an apiserver answer
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            err = APIError(500, "InternalError", f"Internal error occurred: {type(e).__name__}: {e}")
            return _json(err.status(), 500)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        segs = [s for s in path.split("/") if s]
        if path == "/version":
            return _json(kinds.SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/api":
            return _json(kinds.api_versions(f"{self.host}:{self.port}"))
        if path == "/apis":
            return _json(kinds.api_group_list())
        if path == "/openapi/v3":
            return _json(kinds.openapi_v3_root())
        if path.startswith("/openapi/v3/"):
            doc = kinds.openapi_v3(path.removeprefix("/openapi/v3/"))
            if doc is None:
                raise self._no_resource()
            return _json(doc)
        if segs and segs[0] == "_control":
            return await self._control(request, segs[1:])
        if len(segs) >= 2 and segs[0] == "api":
            gv, rest = segs[1], segs[2:]
        elif len(segs) >= 2 and segs[0] == "apis":
            if len(segs) == 2:
                doc = kinds.api_group(segs[1])
                if doc is None:
                    raise self._no_resource()
                return _json(doc)
            gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
        else:
            raise self._no_resource()
        if not rest:
            doc = kinds.api_resource_list(gv)
            if doc is None:
                raise self._no_resource()
            return _json(doc)
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (k := kinds.kind_for(gv, rest[2])) and k.namespaced:
            ns, rest = rest[1], rest[2:]
        k = kinds.kind_for(gv, rest[0]) if rest else None
        if k is None or len(rest) > 3:
            raise self._no_resource()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub not in (None, "status"):
            raise self._no_resource()
        if name and k.namespaced and ns is None:
            raise self._no_resource()
        q = request.query
        method = request.method
        if name is None:
            if method == "GET":
                if watch_path or q.get("watch") in ("true", "1", "True"):
                    return await self._watch(request, k, ns)
                return await self._list(request, k, ns)
            if method == "POST":
                if k.namespaced and ns is None:
                    raise APIError(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
                obj = await self._body(request, k)
                return _json(self.store.create(obj, ns), 201)
            if method == "DELETE":
                return self._delete_collection(request, k, ns)
        else:
            if method == "GET" and watch_path:
                return await self._watch(request, k, ns, name)
            if method == "GET":
                obj = self.store.get_ref(k.kind, ns, name)
                if tables.wants_table(request.headers.get("Accept", "")):
                    return _json(tables.table(k.kind, [obj], {"resourceVersion": obj["metadata"]
                                 ["resourceVersion"]}, q.get("includeObject", "Metadata")))
                return _json(obj)
            if method == "PUT":
                obj = await self._body(request, k)
                self._check_name(k, obj, name)
                if sub == "status":
                    cur = self.store.get(k.kind, ns, name)
                    cur["status"] = obj.get("status")
                    if obj.get("metadata", {}).get("resourceVersion"):
                        cur["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
                    obj = cur
                return _json(self.store.update(obj, ns))
            if method == "PATCH":
                return await self._patch(request, k, ns, name)
            if method == "DELETE":
                return await self._delete(request, k, ns, name)
        raise APIError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    @staticmethod
    def _no_resource() -> APIError:
        return APIError(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def _check_name(k: Kind, obj: Obj, name: str) -> None:
        md = obj.setdefault("metadata", {})
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(f"the name of the object ({md['name']}) does not match the name on "
                                     f"the URL ({name})")
        md["name"] = name

    @staticmethod
    def _reject_protobuf(request: web.Request) -> None:
        if "protobuf" in request.content_type or "cbor" in request.content_type:
            # kubectl's typed commands (create namespace/service, expose, run) send protobuf.
            raise APIError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types "
                           f"include: application/json, application/yaml (this test apiserver does not "
                           f"speak {request.content_type}; use kubectl create -f / apply -f)")

    async def _body(self, request: web.Request, k: Kind) -> Obj:
        self._reject_protobuf(request)
        raw = await request.read()
        try:
            obj = yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw)
        except Exception as e:
            raise errors.bad_request(f"error decoding request body: {e}")
        if not isinstance(obj, dict):
            raise errors.bad_request("request body must be an object")
        obj.setdefault("kind", k.kind)
        obj.setdefault("apiVersion", k.api_version)
        if obj["kind"] != k.kind:
            raise errors.bad_request(f"the kind in the data ({obj['kind']}) does not match the expected "
                                     f"kind ({k.kind})")
        return obj

    def _selectors(self, request: web.Request, k: Kind) -> tuple[list[Requirement], list[FieldReq]]:
        q = request.query
        return (parse_label_selector(q.get("labelSelector")),
                parse_field_selector(q.get("fieldSelector"), k.kind, k.namespaced))

    async def _wait_for_version(self, rv_param: str | None) -> None:
        """A resourceVersion from the future: wait (3s by default) like the watch cache, then 504
        ResourceVersionTooLarge (what a client sees after talking to a newer apiserver / etcd)."""
        try:
            want = int(rv_param or "0")
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_param}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.too_large_wait
        while want > self.store.resource_version:
            if loop.time() >= deadline:
                err = APIError(504, "Timeout", f"Too large resource version: {want}, current: "
                               f"{self.store.resource_version}")
                err.details = {"causes": [{"reason": "ResourceVersionTooLarge",
                                           "message": "Too large resource version"}], "retryAfterSeconds": 1}
                raise err
            await asyncio.sleep(0.05)

    async def _list(self, request: web.Request, k: Kind, ns: str | None) -> web.Response:
        q = request.query
        while self._stall_lists:  # stall_lists: no answer yet (the client may give up meanwhile)
            await asyncio.sleep(0.05)
        if q.get("resourceVersionMatch") != "Exact" and not q.get("continue"):
            await self._wait_for_version(q.get("resourceVersion"))
        labels, fields = self._selectors(request, k)
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer")
        rv_param = q.get("resourceVersion")
        cur_rv = self.store.resource_version
        if q.get("resourceVersionMatch") == "Exact" and rv_param and rv_param != str(cur_rv):
            # We keep no old snapshots, so only the current version can be listed exactly.
            raise errors.expired(f"too old resource version: {rv_param} ({cur_rv})")
        items, rv, cont, remaining = self.store.list_refs(
            k.kind, ns, labels, fields, limit=limit, continue_token=q.get("continue") or None)
        meta: Obj = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(k.kind, items, meta, q.get("includeObject", "Metadata")))
        # Items in a list carry neither kind nor apiVersion, as the real apiserver writes them.
        body = {"kind": f"{k.kind}List", "apiVersion": k.api_version, "metadata": meta,
                "items": [{kk: v for kk, v in o.items() if kk not in ("kind", "apiVersion")} for o in items]}
        return _json(body)

    async def _patch(self, request: web.Request, k: Kind, ns: str | None, name: str) -> web.Response:
        ct = request.content_type
        raw = await request.read()
        try:
            patch = yaml.safe_load(raw) if "yaml" in ct else json.loads(raw)
        except Exception as e:
            raise errors.bad_request(f"error decoding patch: {e}")
        if ct == "application/json-patch+json":
            cur = self.store.get(k.kind, ns, name)
            new = json_patch(cur, patch)
        elif ct in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml"):
            try:
                cur = self.store.get(k.kind, ns, name)
            except APIError:
                if ct.startswith("application/apply-patch"):
                    patch.setdefault("metadata", {})["name"] = name
                    return _json(self.store.create(patch, ns), 201)
                raise
            smp = ct == "application/strategic-merge-patch+json"
            new = strategic_merge_patch(cur, patch) if smp else merge_patch(cur, patch)
        else:
            raise APIError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, "
                           f"application/merge-patch+json, application/apply-patch+yaml (got {ct})")
        self._check_name(k, new, name)
        if not (isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion")):
            new["metadata"].pop("resourceVersion", None)
        return _json(self.store.update(new, ns))

    async def _delete(self, request: web.Request, k: Kind, ns: str | None, name: str) -> web.Response:
        raw = await request.read()
        pre: Obj = {}
        if raw.strip():
            with contextlib.suppress(Exception):
                pre = (json.loads(raw) or {}).get("preconditions") or {}
        gone = self.store.delete(k.kind, ns, name, precondition_rv=pre.get("resourceVersion"),
                                 precondition_uid=pre.get("uid"))
        if k.kind in ("Service", "Pod", "Namespace"):
            return _json(gone)  # these registries return the deleted object
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": name, "group": k.group, "kind": k.plural,
                                  "uid": gone["metadata"]["uid"]}})

    def _delete_collection(self, request: web.Request, k: Kind, ns: str | None) -> web.Response:
        labels, fields = self._selectors(request, k)
        items, _, _, _ = self.store.list_refs(k.kind, ns, labels, fields)
        gone = []
        for o in items:
            with contextlib.suppress(APIError):
                gone.append(self.store.delete(k.kind, o["metadata"].get("namespace"), o["metadata"]["name"]))
        return _json({"kind": f"{k.kind}List", "apiVersion": k.api_version,
                      "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": gone})

    # ------------------------------------------------------------------ watch

    def _bookmark(self, k: Kind, rv: int, initial_end: bool = False) -> bytes:
        md: Obj = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return _dumps({"type": "BOOKMARK", "object": {"kind": k.kind, "apiVersion": k.api_version,
                                                       "metadata": md}}) + b"\n"

    def _event_line(self, w: _Watcher, etype: str, obj: Obj) -> bytes:
        if w.table:
            obj = tables.table(w.kind.kind, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                               w.include, columns=not w.sent_columns)
            w.sent_columns = True
        return _dumps({"type": etype, "object": obj}) + b"\n"

    async def _watch(
        self, request: web.Request, k: Kind, ns: str | None, name: str | None = None
    ) -> web.StreamResponse:
        assert self._loop is not None
        q = request.query
        labels, fields = self._selectors(request, k)
        if name is not None:
            fields = [*fields, *parse_field_selector(f"metadata.name={name}", k.kind, k.namespaced)]
        try:
            timeout = float(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be an integer")
        if timeout <= 0:  # unset or 0: the server's own limit, like --min-request-timeout
            timeout = self.watch_timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1", "True")
        send_initial = q.get("sendInitialEvents") == "true"
        rv_param = q.get("resourceVersion") or ""
        start_rv = 0
        if rv_param and rv_param != "0":
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv_param}")
        if start_rv:
            await self._wait_for_version(rv_param)
        w = _Watcher(k, ns, labels, fields, asyncio.Queue(), transport=request.transport,
                     table=tables.wants_table(request.headers.get("Accept", "")),
                     include=q.get("includeObject", "Metadata"))
        initial: list[tuple[str, Obj]] = []
        failure: APIError | None = None
        with self.store.lock:
            cur = self.store.resource_version
            if send_initial or not start_rv:
                items, cur, _, _ = self.store.list_refs(k.kind, ns, labels, fields)
                initial = [("ADDED", o) for o in items]
            else:
                try:
                    for ev in self.store.events_since(start_rv):
                        if ev.kind == k.kind and (t := w.translate(ev)):
                            initial.append(t)
                except APIError as e:
                    failure = e
            w.last_rv = cur
            w.silenced = self._hold_watches
            if failure is None:
                self._watchers.add(w)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if failure is not None:
                await resp.write(_dumps({"type": "ERROR", "object": failure.status()}) + b"\n")
                await resp.write_eof()
                return resp
            loop = self._loop
            deadline = loop.time() + timeout
            if initial and not w.silenced:
                await resp.write(b"".join(self._event_line(w, t, o) for t, o in initial))
            if bookmarks and not w.silenced:
                # Only w.last_rv is safe here: events newer than it may already sit in the queue.
                await resp.write(self._bookmark(k, w.last_rv, send_initial))
            next_bm = loop.time() + self.bookmark_interval
            while True:
                if w.silenced:
                    if await self._silent(request, w):
                        break
                    return resp
                now = loop.time()
                if now >= deadline:
                    if bookmarks and w.queue.empty():
                        await resp.write(self._bookmark(k, max(w.last_rv, self._dispatched_rv)))
                    break
                until = min(deadline, next_bm) if bookmarks else deadline
                wait = max(0.0, min(until - now, 1.0))
                try:
                    item = await asyncio.wait_for(w.queue.get(), wait)
                except TimeoutError:
                    tr = request.transport
                    if tr is None or tr.is_closing():
                        return resp  # the client went away
                    if bookmarks and loop.time() >= next_bm and w.queue.empty():
                        await resp.write(self._bookmark(k, max(w.last_rv, self._dispatched_rv)))
                        next_bm = loop.time() + self.bookmark_interval
                    continue
                if item is _ABORT:
                    return resp
                if item is _CLOSE:
                    break
                if w.silenced:
                    continue  # silenced while waiting: this event is swallowed too
                event: Event = item
                if event.rv <= w.last_rv:
                    continue
                w.last_rv = event.rv
                t = w.translate(event)
                if t is not None:
                    await resp.write(self._event_line(w, *t))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write_eof()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(w)
        return resp

    @staticmethod
    async def _silent(request: web.Request, w: _Watcher) -> bool:
        """A silenced stream: swallow its events, write nothing, ignore its deadline, until the
        client goes away (False) or drop_watches ends it (True: end the stream cleanly)."""
        while True:
            try:
                item = await asyncio.wait_for(w.queue.get(), 1.0)
            except TimeoutError:
                tr = request.transport
                if tr is None or tr.is_closing():
                    return False
                continue
            if item is _ABORT:
                return False
            if item is _CLOSE:
                return True

    # ------------------------------------------------------------------ control endpoints

    async def _control(self, request: web.Request, segs: list[str]) -> web.Response:
        """POST /_control/{drop-watches,expire,unreachable?seconds=N&mode=refuse|503,reachable,
        hold-watches?on=1|0,stall-lists?on=1|0},
        for when the server runs as a subprocess and tests cannot call methods."""
        if request.method != "POST" or len(segs) != 1:
            raise self._no_resource()
        q = request.query
        what = segs[0]
        if what == "drop-watches":
            return _json({"dropped": self.drop_watches(clean=q.get("clean") in ("1", "true"))})
        if what == "hold-watches":
            return _json({"silenced": self.hold_watches(q.get("on", "1") in ("1", "true"))})
        if what == "stall-lists":
            self.stall_lists(q.get("on", "1") in ("1", "true"))
            return _json({"stalled": self._stall_lists})
        if what == "expire":
            return _json({"resourceVersion": str(self.expire_resource_versions())})
        if what == "unreachable":
            seconds = float(q.get("seconds", "5"))
            mode = q.get("mode", "refuse")
            if mode not in ("refuse", "503", "500"):
                raise errors.bad_request("mode must be refuse, 503 or 500")
            assert self._loop is not None

            async def later() -> None:
                await asyncio.sleep(0.05)  # let this response go out first
                await self._set_unreachable_async(True, mode)
                self._recover_handle = self._loop.call_later(  # type: ignore[union-attr]
                    seconds, lambda: asyncio.ensure_future(self._set_unreachable_async(False, mode)))

            self._tasks.add(t := asyncio.ensure_future(later()))
            t.add_done_callback(self._tasks.discard)
            return _json({"unreachable": mode, "seconds": seconds})
        if what == "reachable":
            await self._set_unreachable_async(False, "refuse")
            return _json({"unreachable": None})
        raise self._no_resource()

    async def _set_unreachable_async(self, flag: bool, mode: str) -> None:
        if flag:
            if self._unreachable == "refuse" and mode in _FAILING:
                await self._listen()
            self._unreachable = mode
            if mode == "refuse" and self._server is not None:
                self._server.close()
                self._server = None
            self._abort_connections()
        else:
            was, self._unreachable = self._unreachable, None
            if was == "refuse" and self._server is None:
                await self._listen()
