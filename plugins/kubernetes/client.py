"""kubernetes-asyncio for configuration and transport only, without its generated API and models.

`import kubernetes_asyncio.client` runs a package `__init__` that imports ~70 API modules and ~700
model classes: 0.6 s and tens of MB that the watch never uses (it reads raw JSON). This module loads
just the pieces the watch needs: `Configuration` (kubeconfig, in-cluster service account, exec and
token auth, TLS through `kubernetes_asyncio.config`), `ApiClient` (auth headers, the aiohttp
transport). The packages on the way (`kubernetes_asyncio`, `kubernetes_asyncio.client`, its
`models`) are registered as lazy modules: anything else asked of them later (by other code in the
same process) runs their real `__init__` on first use, so nothing else sees a difference.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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


def modules() -> tuple[Any, Any, Any]:
    """(Configuration, ApiClient, kubernetes_asyncio.config) with the least importing."""
    if "kubernetes_asyncio.config" not in sys.modules:
        _lazy_package("kubernetes_asyncio")
        client = _lazy_package("kubernetes_asyncio.client")
        _lazy_package("kubernetes_asyncio.client.models")
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
