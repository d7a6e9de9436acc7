"""kubernetes-asyncio for configuration and transport only, without its generated API and models.

`import kubernetes_asyncio.client` runs a package `__init__` that imports ~70 API modules and ~700
model classes: 0.6 s and tens of MB that the watch never uses (it reads raw JSON). This module loads
just the pieces the watch needs: `Configuration` (kubeconfig, in-cluster service account, exec and
token auth, TLS through `kubernetes_asyncio.config`), `ApiClient` (auth headers, the aiohttp
transport). The packages on the way (`kubernetes_asyncio`, `kubernetes_asyncio.client`, its
`models`) are registered as lazy modules: anything else asked of them later (by other code in the
same process) runs their real `__init__` on first use, so nothing else sees a difference.

Three imports of those modules serve only code paths the watch never takes, and come before the first
list request: `urllib3` (basic auth headers), `multiprocessing.pool.ThreadPool` (`async_req` calls)
and `dateutil.parser.parse` (model deserialisation), about a fifth of the client's import time
(`python -X importtime`). They are imported while stand-ins (`_Deferred`) sit in `sys.modules`, which
load the real module on first use; the stand-ins leave `sys.modules` again right after.

Three loads of the system CA bundle (~16-19 ms of CPU each) come before the first list request too:
aiohttp builds two default SSL contexts when `aiohttp.connector` is imported, and kubernetes-asyncio's
`RESTClientObject` builds a third with the defaults when no CA file is configured, also for an `http://`
API server, which never uses any of them. While the client loads and while `api_client` builds the
client, `SSLContext.set_default_verify_paths` is replaced (`_cas_on_first_use`): a context asking for the
defaults loads them just before its first use (a handshake, or reading its CA list), so TLS, a
kubeconfig's CA, the in-cluster service account and any other user of those contexts see the same
certificates as before, only later.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

LIST_PATHS = {
    "namespaces": "/api/v1/namespaces",
    "services": "/api/v1/services",
    "pods": "/api/v1/pods",
    "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
}


def _lazy_package(name: str) -> ModuleType:
    """The package `name` registered without running its `__init__` until an unknown attribute is read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    mod = importlib.util.module_from_spec(spec)
    loaded = False

    def __getattr__(attr: str) -> Any:
        nonlocal loaded
        if loaded or attr.startswith("__"):
            raise AttributeError(attr)
        loaded = True
        del mod.__dict__["__getattr__"]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        return getattr(mod, attr)

    mod.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)
    return mod


class _Deferred(ModuleType):
    """Stands in for module `name` during one import: `names` are forwarders that import the real module
    when called (for `from name import x`); any other attribute imports it on first read."""

    def __init__(self, name: str, names: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        for attr in names:
            self.__dict__[attr] = self._forwarder(attr)

    def _real(self) -> ModuleType:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)

    def _forwarder(self, attr: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._real(), attr)(*args, **kwargs)

        call.__name__ = attr
        return call

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._real(), attr)


DEFERRED = {"urllib3": (), "multiprocessing.pool": ("ThreadPool",), "dateutil.parser": ("parse",)}


@contextmanager
def _deferred(stand_ins: dict[str, tuple[str, ...]]) -> Iterator[None]:
    """`stand_ins` not imported yet are `_Deferred` in `sys.modules` for the duration of the block."""
    placed = {}
    for name, names in stand_ins.items():
        if name not in sys.modules:
            placed[name] = sys.modules[name] = _Deferred(name, names)
    try:
        yield
    finally:
        for name, mod in placed.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]


# what an SSL context needs its CA certificates for; a context with the defaults pending loads them first
_NEEDS_CAS = ("wrap_socket", "wrap_bio", "get_ca_certs", "cert_store_stats")
_set_default_verify_paths = ssl.SSLContext.set_default_verify_paths
_cas_lock = threading.Lock()
_cas_holds = 0  # blocks (in any thread) running with the loads deferred


def _defer_default_cas(ctx: ssl.SSLContext) -> None:
    """`set_default_verify_paths` for `ctx`, run just before the first call of a method in _NEEDS_CAS."""
    if any(name in ctx.__dict__ for name in _NEEDS_CAS):
        return  # already pending
    lock = threading.Lock()
    pending = True

    def load() -> None:
        nonlocal pending
        with lock:
            if not pending:
                return  # another thread loaded them
            _set_default_verify_paths(ctx)  # before the stand-ins go: no thread sees a context without them
            pending = False
            for name in _NEEDS_CAS:
                delattr(ctx, name)

    def first_use(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            load()
            return getattr(ctx, name)(*args, **kwargs)

        call.__name__ = name
        return call

    for name in _NEEDS_CAS:
        setattr(ctx, name, first_use(name))


@contextmanager
def _cas_on_first_use() -> Iterator[None]:
    """SSL contexts asking for the default CA certificates in this block load them on first use."""
    global _cas_holds
    with _cas_lock:
        if _cas_holds == 0:
            ssl.SSLContext.set_default_verify_paths = _defer_default_cas  # type: ignore[method-assign,assignment]
        _cas_holds += 1
    try:
        yield
    finally:
        with _cas_lock:
            _cas_holds -= 1
            if _cas_holds == 0:
                del ssl.SSLContext.set_default_verify_paths  # the C method of the base class again


class SentRequests:
    """When the request of a GET with a given `continue` token has gone out (aiohttp's
    on_request_headers_sent): a list decodes a page once the next page's request is on its way, so the
    API server builds that page while this thread decodes (the decode holds the GIL and the loop)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[None]] = {}

    async def _headers_sent(self, _session: Any, _ctx: Any, params: Any) -> None:
        fut = self.waiting.pop(params.url.query.get("continue") or "", None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def trace_config(self) -> Any:
        import aiohttp

        tc = aiohttp.TraceConfig()
        tc.on_request_headers_sent.append(self._headers_sent)
        tc.freeze()
        return tc

    async def until_sent(self, token: str, get: asyncio.Future[Any]) -> None:
        """Return once the GET `get` (with `continue=token`) has written its request, or has ended."""
        fut = self.waiting[token] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((fut, get), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self.waiting.get(token) is fut:
                del self.waiting[token]


def api_client(ApiClient: Any, cfg: Any, sent: SentRequests | None = None) -> Any:
    """`ApiClient(cfg)`; its SSL context loads the default CAs on first use (never for `http://`);
    `sent` learns when its requests have gone out."""
    with _cas_on_first_use():
        api = ApiClient(cfg)
    if sent is not None:
        api.rest_client.pool_manager.trace_configs.append(sent.trace_config())
    return api


def modules() -> tuple[Any, Any, Any]:
    """(Configuration, ApiClient, kubernetes_asyncio.config) with the least importing."""
    if "kubernetes_asyncio.config" not in sys.modules:
        _lazy_package("kubernetes_asyncio")
        client = _lazy_package("kubernetes_asyncio.client")
        _lazy_package("kubernetes_asyncio.client.models")
        with _deferred(DEFERRED), _cas_on_first_use():
            for sub in ("exceptions", "configuration", "rest"):
                importlib.import_module(f"kubernetes_asyncio.client.{sub}")
            api_client = importlib.import_module("kubernetes_asyncio.client.api_client")
        if "ApiClient" not in client.__dict__:
            client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
            client.Configuration = sys.modules["kubernetes_asyncio.client.configuration"].Configuration  # type: ignore[attr-defined]
    config = importlib.import_module("kubernetes_asyncio.config")
    client = sys.modules["kubernetes_asyncio.client"]
    return client.Configuration, client.ApiClient, config


async def get(api: Any, path: str, params: list[tuple[str, Any]], timeout: tuple[float, float]) -> Any:
    """GET `path` with the client's auth; the raw aiohttp response (JSON left to the caller)."""
    return await api.call_api(path, "GET", query_params=params, header_params={"Accept": "application/json"},
                              auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
