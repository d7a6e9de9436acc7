"""meta.k8s.io/v1 Table rendering, so `kubectl get` prints what it prints against a real cluster.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``; the columns below are
the ones the apiserver's printers (pkg/printers/internalversion) define for these kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d < 365 * 8 else f"{d // 365}y"


def age(obj: Obj) -> str:
    """The AGE column."""
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - t).total_seconds())


def _col(name: str, typ: str = "string", desc: str = "", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


def _svc_ports(spec: Obj) -> str:
    out = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol", "TCP")
        out.append(f"{p['port']}:{p['nodePort']}/{proto}" if p.get("nodePort") else f"{p['port']}/{proto}")
    return ",".join(out) or "<none>"


def _svc_external(spec: Obj, status: Obj) -> str:
    t = spec.get("type", "ClusterIP")
    if t == "ExternalName":
        return spec.get("externalName", "")
    ips = list(spec.get("externalIPs") or [])
    if t == "LoadBalancer":
        lb = status.get("loadBalancer") or {}
        ing = [i.get("ip") or i.get("hostname") for i in lb.get("ingress") or []]
        ips = ips + [i for i in ing if i]
        return ",".join(ips) or "<pending>"
    return ",".join(ips) or "<none>"


def _service_row(o: Obj) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    sel = spec.get("selector") or {}
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            _svc_external(spec, status), _svc_ports(spec), age(o),
            ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"]


def _pod_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    cs = st.get("containerStatuses") or []
    total = len(spec.get("containers") or []) or len(cs)
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    reason = st.get("reason") or st.get("phase", "Unknown")
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [o["metadata"]["name"], f"{ready}/{total}", reason, restarts, age(o), st.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", "<none>"]


def _slice_row(o: Obj) -> list[Any]:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None)
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    eps = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o["metadata"]["name"], o.get("addressType", ""), ports or "<unset>", eps or "<unset>", age(o)]


def _endpoints_row(o: Obj) -> list[Any]:
    addrs = []
    for s in o.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{"port": None}]:
                addrs.append(f"{a['ip']}:{p['port']}" if p.get("port") else a["ip"])
    return [o["metadata"]["name"], ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3
                                                        else "") or "<none>", age(o)]


NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = _col("Age", desc="CreationTimestamp is a timestamp representing the server time when this object "
           "was created.")

TABLES: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "Namespace": ([NAME, _col("Status", desc="The status of the namespace"), AGE],
                  lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), age(o)]),
    "Service": ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE,
                 _col("Selector", priority=1)], _service_row),
    "Pod": ([NAME, _col("Ready"), _col("Status"), _col("Restarts", "string"), AGE, _col("IP", priority=1),
             _col("Node", priority=1), _col("Nominated Node", priority=1),
             _col("Readiness Gates", priority=1)], _pod_row),
    "EndpointSlice": ([NAME, _col("AddressType"), _col("Ports"), _col("Endpoints"), AGE], _slice_row),
    "Endpoints": ([NAME, _col("Endpoints"), AGE], _endpoints_row),
}


def wants_table(accept: str) -> bool:
    """True when the Accept header asks for meta.k8s.io Table."""
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _row_object(o: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata")}


def table(kind: str, objs: list[Obj], list_meta: Obj | None, include: str = "Metadata",
          columns: bool = True) -> Obj:
    """A Table of ``objs`` with the kind's columns; ``include`` is the includeObject policy."""
    cols, row = TABLES[kind]
    rows = []
    for o in objs:
        r: Obj = {"cells": row(o)}
        ob = _row_object(o, include)
        if ob is not None:
            r["object"] = ob
        rows.append(r)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}}
    if columns:
        out["columnDefinitions"] = cols
    out["rows"] = rows
    return out
