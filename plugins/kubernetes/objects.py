"""Reduce Kubernetes API objects (JSON dicts) to the few fields DNS needs, on arrival.

Runs in the watch thread; the results are small immutable tuples/slots objects that cross into trio.
Anything odd in an object (missing fields, wrong types) gives None ("ignore"), never an exception.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime
from typing import Any, NamedTuple

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


class Port(NamedTuple):
    name: str  # lowercased; "" when unnamed
    proto: str  # lowercased: tcp, udp, sctp
    port: int  # -1: the sentinel for "no ports"


class Service(NamedTuple):
    ns: str
    name: str
    ips: tuple[str, ...]  # ClusterIPs; empty when headless or ExternalName
    headless: bool
    external: str  # ExternalName target ("" otherwise)
    ports: tuple[Port, ...]
    selector: bool
    external_ips: tuple[str, ...] = ()  # spec.externalIPs, then LoadBalancer ingress IPs/hostnames (k8s_external)


class Address(NamedTuple):
    ip: str
    hostname: str
    target: str  # targetRef pod name ("" if none)


class Slice(NamedTuple):
    ns: str
    name: str
    service: str
    addrs: tuple[Address, ...]  # ready addresses only
    ports: tuple[Port, ...]
    trigger: float | None  # last-change-trigger-time (unix seconds), for the programming-duration metric


class Pod(NamedTuple):
    ns: str
    name: str
    ip: str


NO_PORTS = (Port("", "", -1),)


def _meta(obj: Any) -> tuple[str, str] | None:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(md, dict) or not isinstance(md.get("name"), str):
        return None
    ns = md.get("namespace") or ""
    return (ns if isinstance(ns, str) else ""), md["name"]


def _ports(items: Any) -> tuple[Port, ...]:
    out = []
    for p in items or ():
        if not isinstance(p, dict):
            continue
        num = p.get("port")
        if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num <= 65535:
            continue  # not a port an SRV record can carry (the API validates 1-65535)
        out.append(_shared(Port(str(p.get("name") or "").lower(), str(p.get("protocol") or "TCP").lower(), num)))
    return _shared(tuple(out)) if out else NO_PORTS


def _shared(value: Any) -> Any:
    """One object per distinct port or port list (bounded: cleared past 10,000)."""
    if len(_PORTS) > 10000:
        _PORTS.clear()
    return _PORTS.setdefault(value, value)


# every service and slice repeats a handful of port lists (http/80/tcp...): one object each
_PORTS: dict[Any, Any] = {}  # used by the watch thread only


def _ip(text: Any) -> str | None:
    """The address in canonical form, or None. inet_pton accepts exactly the canonical dotted quad
    (no leading zeros), so IPv4 needs no ipaddress object (the bulk of a large list)."""
    if not isinstance(text, str):
        return None
    try:
        socket.inet_pton(socket.AF_INET, text)
        return text
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reduce_service(obj: Any) -> Service | None:
    key = _meta(obj)
    spec = obj.get("spec") if key else None
    if key is None or not isinstance(spec, dict):
        return None
    ns, name = key
    ports = _ports(spec.get("ports"))
    selector = bool(spec.get("selector"))
    ext_ips = _external_ips(obj, spec)
    if spec.get("type") == "ExternalName":
        ext = spec.get("externalName")
        return Service(ns, name, (), False, ext if isinstance(ext, str) else "", ports, selector, ext_ips)
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if not isinstance(ips, list):
        ips = []
    if ips and ips[0] == "None":
        return Service(ns, name, (), True, "", ports, selector, ext_ips)
    clean = tuple(ip for ip in (_ip(x) for x in ips) if ip)
    return Service(ns, name, clean, False, "", ports, selector, ext_ips)


def _external_ips(obj: dict, spec: dict) -> tuple[str, ...]:
    """CoreDNS's object.Service ExternalIPs: spec.externalIPs, then each ingress's IP or else hostname."""
    out = [x for x in spec.get("externalIPs") or () if isinstance(x, str)]
    status = obj.get("status")
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    for ing in (lb.get("ingress") if isinstance(lb, dict) else None) or ():
        if isinstance(ing, dict):
            value = ing.get("ip") or ing.get("hostname")
            if isinstance(value, str) and value:
                out.append(value)
    return tuple(out)


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def reduce_slice(obj: Any, keep_targets: bool = True) -> Slice | None:
    """One slice's ready addresses; pod names (`targetRef`) only kept when `endpoint_pod_names` needs them."""
    key = _meta(obj)
    if key is None:
        return None
    md = obj["metadata"]
    labels = md.get("labels") or {}
    svc = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    if not isinstance(svc, str) or not svc:
        return None
    addrs = []
    for ep in obj.get("endpoints") or ():
        if not isinstance(ep, dict):
            continue
        cond = ep.get("conditions") or {}
        if isinstance(cond, dict) and cond.get("ready") is False:
            continue
        raw_host = ep.get("hostname")
        host = raw_host if isinstance(raw_host, str) else ""
        if len(host.encode()) > 63:
            host = ""  # no DNS label can carry it (the API refuses it): the dashed IP, not a lost service
        ref = ep.get("targetRef") or {}
        is_pod = keep_targets and isinstance(ref, dict) and ref.get("kind", "Pod") == "Pod"
        target = ref.get("name", "") if is_pod else ""
        for a in ep.get("addresses") or ():
            ip = _ip(a)
            if ip:
                addrs.append(Address(ip, host.lower(), str(target or "").lower()))
    annotations = md.get("annotations") or {}
    trigger = _parse_time(annotations.get(TRIGGER_TIME)) if isinstance(annotations, dict) else None
    return Slice(key[0], key[1], svc, tuple(addrs), _ports(obj.get("ports")), trigger)


def reduce_pod(obj: Any) -> Pod | None:
    key = _meta(obj)
    if key is None or obj["metadata"].get("deletionTimestamp"):
        return None  # terminating pods are dropped
    status = obj.get("status") or {}
    ip = _ip(status.get("podIP")) if isinstance(status, dict) else None
    return Pod(key[0], key[1], ip) if ip else None


def reduce_namespace(obj: Any) -> str | None:
    key = _meta(obj)
    return key[1] if key else None
