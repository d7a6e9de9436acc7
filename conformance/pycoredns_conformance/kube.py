"""The few Kubernetes REST calls the suite makes: load the fixture cluster into an API server, and
create/replace/delete objects for the cases that change the cluster while the DNS server runs.

Plain HTTP without authentication: our API test server (`conformance/apiserver`) or `kubectl proxy`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

_COLLECTIONS = {"Namespace": "api/v1/namespaces", "Service": "api/v1/namespaces/{ns}/services",
                "Pod": "api/v1/namespaces/{ns}/pods",
                "EndpointSlice": "apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"}
_API_VERSIONS = {"Namespace": "v1", "Service": "v1", "Pod": "v1", "EndpointSlice": "discovery.k8s.io/v1"}


class KubeError(RuntimeError):
    """An API call that failed (status and the server's message)."""


def collection(kind: str, namespace: str | None) -> str:
    if kind not in _COLLECTIONS:
        raise KubeError(f"unsupported kind {kind!r} (one of {', '.join(_COLLECTIONS)})")
    return _COLLECTIONS[kind].format(ns=namespace or "default")


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One request; returns (status, decoded JSON body or {})."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url.rstrip('/')}/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"message": raw[:300].decode(errors="replace")}


def _ok(status: int, body: dict[str, Any], what: str) -> None:
    if status >= 300:
        raise KubeError(f"{what}: HTTP {status}: {body.get('message', body)}")


def create(url: str, obj: dict[str, Any]) -> bool:
    """POST; False if it already exists (409)."""
    obj = {"apiVersion": _API_VERSIONS.get(obj.get("kind", ""), "v1"), **obj}
    path = collection(obj["kind"], obj.get("metadata", {}).get("namespace"))
    status, body = call(url, "POST", path, obj)
    if status == 409:
        return False
    _ok(status, body, f"POST {path}")
    return True


def apply(url: str, obj: dict[str, Any]) -> None:
    """Create, or replace what exists under that name (PUT with the current resourceVersion)."""
    if create(url, obj):
        return
    meta = obj["metadata"]
    path = f"{collection(obj['kind'], meta.get('namespace'))}/{meta['name']}"
    status, current = call(url, "GET", path)
    _ok(status, current, f"GET {path}")
    new = {"apiVersion": _API_VERSIONS[obj["kind"]], **obj,
           "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
    status, body = call(url, "PUT", path, new)
    _ok(status, body, f"PUT {path}")


def delete(url: str, kind: str, namespace: str | None, name: str) -> None:
    """DELETE; an object that is already gone is fine."""
    path = f"{collection(kind, namespace)}/{name}"
    status, body = call(url, "DELETE", path)
    if status != 404:
        _ok(status, body, f"DELETE {path}")


def load_fixture(url: str) -> int:
    """Create the fixture cluster's objects; those that exist are left alone. Returns how many were created."""
    from .apiserver import FIXTURE_CLUSTER, load_objects

    return sum(create(url, obj) for obj in load_objects(FIXTURE_CLUSTER))
