"""A large synthetic cluster for benchmarks, built in memory in one pass."""

from __future__ import annotations

import ipaddress
from typing import Any


def generate_cluster(
    n_services: int,
    endpoints_per_service: int = 10,
    *,
    n_namespaces: int = 10,
    service_base: str = "10.241.0.0",
    pod_base: str = "10.244.0.0",
    headless_every: int = 10,
) -> list[dict[str, Any]]:
    """Namespaces ``bench-N``, services ``svc-N`` and one EndpointSlice per 100 endpoints.

    Every ``headless_every``-th service is headless (clusterIP None, endpoints with hostnames), the
    rest are ClusterIP services whose IPs count up from ``service_base``; endpoint IPs count up from
    ``pod_base`` and are all ready. Ports: ``http`` 80/TCP and ``dns`` 53/UDP.
    """
    n_namespaces = max(1, min(n_namespaces, n_services or 1))
    svc0 = int(ipaddress.IPv4Address(service_base))
    pod0 = int(ipaddress.IPv4Address(pod_base))
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{i}"}}
        for i in range(n_namespaces)
    ]
    pod_ix = 0
    ports = [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]
    for i in range(n_services):
        ns = f"bench-{i % n_namespaces}"
        name = f"svc-{i}"
        headless = headless_every > 0 and i % headless_every == headless_every - 1
        spec: dict[str, Any] = {
            "type": "ClusterIP",
            "selector": {"app": name},
            "ports": [{**p, "targetPort": p["port"]} for p in ports],
        }
        if headless:
            spec["clusterIP"] = "None"
        else:
            spec["clusterIP"] = str(ipaddress.IPv4Address(svc0 + 1 + i))
        objs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "spec": spec})
        for s in range(0, endpoints_per_service, 100):
            eps = []
            for j in range(s, min(s + 100, endpoints_per_service)):
                ip = str(ipaddress.IPv4Address(pod0 + 1 + pod_ix))
                pod_ix += 1
                ep: dict[str, Any] = {
                    "addresses": [ip],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": f"node-{j % 3}",
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": f"{name}-{j}"},
                }
                if headless:
                    ep["hostname"] = f"{name}-{j}"
                eps.append(ep)
            objs.append({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{s // 100:05x}",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name,
                               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": "",
                                         "controller": True, "blockOwnerDeletion": True}],
                },
                "addressType": "IPv4",
                "endpoints": eps,
                "ports": [dict(p) for p in ports],
            })
    return objs
