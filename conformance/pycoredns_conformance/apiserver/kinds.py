"""The resource kinds this server knows and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Kind:
    """One served resource: what discovery says about it and where its URLs live."""

    kind: str
    plural: str
    singular: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """URL prefix of the group version: /api/v1 or /apis/GROUP/VERSION."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("Namespace", "namespaces", "namespace", "", "v1", False, ["ns"]),
        Kind("Service", "services", "service", "", "v1", True, ["svc"], ["all"]),
        Kind("Pod", "pods", "pod", "", "v1", True, ["po"], ["all"]),
        Kind("Endpoints", "endpoints", "endpoints", "", "v1", True, ["ep"]),
        Kind("EndpointSlice", "endpointslices", "endpointslice", "discovery.k8s.io", "v1", True),
    )
}

BY_PATH: dict[tuple[str, str], Kind] = {(k.api_version, k.plural): k for k in KINDS.values()}

GROUPS: dict[str, list[str]] = {"discovery.k8s.io": ["v1"]}

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-pycoredns-apiserver",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def kind_for(api_version: str, plural: str) -> Kind | None:
    """The Kind served at ``api_version``/``plural``, or None."""
    return BY_PATH.get((api_version, plural))


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> dict[str, Any]:
    vs = GROUPS[name]
    return {
        "name": name,
        "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in vs],
        "preferredVersion": {"groupVersion": f"{name}/{vs[0]}", "version": vs[0]},
    }


def api_group_list() -> dict[str, Any]:
    """GET /apis."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}


def api_group(name: str) -> dict[str, Any] | None:
    """GET /apis/GROUP."""
    if name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def api_resource_list(group_version: str) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/GROUP/VERSION."""
    kinds = [k for k in KINDS.values() if k.api_version == group_version]
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        r: dict[str, Any] = {
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
        }
        if k.short_names:
            r["shortNames"] = k.short_names
        if k.categories:
            r["categories"] = k.categories
        resources.append(r)
        if k.kind in ("Namespace", "Service", "Pod"):
            resources.append({"name": f"{k.plural}/status", "singularName": "", "namespaced": k.namespaced,
                              "kind": k.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def openapi_v3_root() -> dict[str, Any]:
    """GET /openapi/v3: where each group version's document lives."""
    gvs = sorted({k.api_version for k in KINDS.values()})
    out = {}
    for gv in gvs:
        rel = f"api/{gv}" if "/" not in gv else f"apis/{gv}"
        out[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash=pycoredns0"}
    return {"paths": out}


def openapi_v3(rel: str) -> dict[str, Any] | None:
    """A deliberately small OpenAPI v3 document for one group version.

    It only says that PATCH (and POST/PUT) take the ``fieldValidation`` query parameter: that is
    what kubectl's default ``--validate=strict`` looks for to leave validation to the server instead
    of downloading full schemas. There are no schemas, so ``kubectl explain`` / client-side apply
    have nothing to work with."""
    gv = rel.removeprefix("api/").removeprefix("apis/")
    kinds = [k for k in KINDS.values() if k.api_version == gv]
    if not kinds:
        return None
    param = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
    paths: dict[str, Any] = {}
    for k in kinds:
        gvk = {"group": k.group, "version": k.version, "kind": k.kind}
        base = f"{k.prefix}/namespaces/{{namespace}}/{k.plural}" if k.namespaced else f"{k.prefix}/{k.plural}"

        def op(action: str, gvk: dict[str, str] = gvk) -> dict[str, Any]:
            return {"parameters": param, "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}

        paths[base] = {"post": op("post")}
        paths[f"{base}/{{name}}"] = {"put": op("put"), "patch": op("patch")}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths}
