"""The object store: etcd-like resource versions, bounded event history and apiserver defaulting.

Everything here is synchronous and guarded by one lock, so the HTTP side (its own thread and event
loop) and tests (trio, plain threads) can mutate the cluster directly. Stored objects are never
mutated in place: an update replaces the dict, so readers may serialise a reference after the lock
is released.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .errors import APIError
from .kinds import KINDS, Kind
from .selectors import FieldReq, Requirement, fields_match, labels_match

Obj = dict[str, Any]

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_DNS1123_LABEL = re.compile(f"^{_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{_SUBDOMAIN_FMT}$")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              f"validation is '{_LABEL_FMT}')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  f"validation is '{_SUBDOMAIN_FMT}')")


def name_problems(kind: str, name: str) -> list[str]:
    """kube-apiserver 1.36's metadata.name rules, with apimachinery's messages: Namespaces and Services
    are DNS-1123 labels (Services since RelaxedServiceNameValidation, on by default: `9lives` is a
    valid Service name), the other kinds served here (Pod, Endpoints, EndpointSlice) DNS-1123 subdomains."""
    out = []
    if kind in ("Namespace", "Service"):
        if len(name) > 63:
            out.append("must be no more than 63 characters")
        if not _DNS1123_LABEL.match(name):
            out.append(_LABEL_MSG)
    else:
        if len(name) > 253:
            out.append("must be no more than 253 characters")
        if not _DNS1123_SUBDOMAIN.match(name):
            out.append(_SUBDOMAIN_MSG)
    return out


@dataclass(frozen=True)
class Event:
    """One committed change. ``old`` is the previous state, so selector-filtered watches can turn a
    MODIFIED that leaves the selection into DELETED, as the apiserver's watch cache does."""

    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    kind: str
    obj: Obj
    old: Obj | None


def clone(obj: Any) -> Any:
    """Deep copy through JSON: several times faster than copy.deepcopy, and it turns YAML's dates
    into strings as the JSON API would."""
    return json.loads(json.dumps(obj, default=str))


def now_timestamp() -> str:
    """RFC 3339 seconds, the way metav1.Time serialises."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(obj: Obj) -> str:
    """The etcd-style key suffix ``ns/name`` (or ``name``) that lists are sorted by."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def kind_of(obj: Obj) -> Kind:
    """The served Kind for an object's ``kind``; 400 when it is not one we serve."""
    k = KINDS.get(str(obj.get("kind", "")))
    if k is None:
        raise errors.bad_request(f"no kind {obj.get('kind')!r} is registered in this test apiserver")
    return k


def encode_continue(rv: int, start: str) -> str:
    """A continue token shaped like the apiserver's (base64 JSON with ``rv`` and ``start``)."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """Inverse of encode_continue; 400 on garbage like the apiserver."""
    try:
        pad = "=" * (-len(token) % 4)
        d = json.loads(base64.urlsafe_b64decode(token + pad))
        return int(d["rv"]), str(d["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion")


class _Allocator:
    """Sequential IP allocation over a CIDR, skipping addresses in use (deterministic for tests)."""

    def __init__(self, cidr: str) -> None:
        self.net = ipaddress.ip_network(cidr, strict=False)
        size = self.net.num_addresses
        # Kubernetes keeps the low part of the range for static IPs; dynamic ones come from above it.
        self.first = min(max(16, size // 16), 256) if size > 64 else 1
        self.cursor = self.first + 1  # x.y.z.1 reads better than x.y.z.0 in tests

    def allocate(self, used: set[str]) -> str:
        size = self.net.num_addresses
        base = int(self.net.network_address)
        last = size - 1 if self.net.version == 4 else size  # no broadcast for IPv4
        span = last - 1
        for i in range(span):
            off = 1 + (self.cursor - 1 + i) % span
            ip = str(ipaddress.ip_address(base + off))
            if ip not in used:
                self.cursor = off + 1
                return ip
        raise APIError(500, "InternalError",
                       f"Internal error occurred: failed to allocate a serviceIP: range is full ({self.net})")


class Store:
    """Objects by kind, a global resourceVersion counter and a bounded history for watches."""

    def __init__(
        self,
        *,
        service_cidr: str = "10.240.16.0/20",
        service_cidr_v6: str = "fd00:10:240::/112",
        history_size: int = 10000,
        namespace_delay: float = 0.0,
    ) -> None:
        self.lock = threading.RLock()
        self.namespace_delay = namespace_delay
        self._objs: dict[str, dict[str, Obj]] = {k: {} for k in KINDS}
        self._rv = 1
        self._compacted = 1  # watching from a resourceVersion below this is 410 Gone
        self._history: deque[Event] = deque()
        self._history_size = max(1, history_size)
        self._listeners: list[Callable[[Event | None, int], None]] = []
        self._alloc = {4: _Allocator(service_cidr), 6: _Allocator(service_cidr_v6)}
        self._used_ips: set[str] = set()
        self._used_node_ports: set[int] = set()

    # ------------------------------------------------------------------ reading

    @property
    def resource_version(self) -> int:
        """The current (newest) resourceVersion."""
        with self.lock:
            return self._rv

    @property
    def compacted(self) -> int:
        """Oldest resourceVersion a watch may start from."""
        with self.lock:
            return self._compacted

    def get_ref(self, kind: str, namespace: str | None, name: str) -> Obj:
        """The stored object (do not mutate); 404 APIError if absent."""
        k = KINDS[kind]
        key = f"{namespace}/{name}" if k.namespaced else name
        with self.lock:
            obj = self._objs[kind].get(key)
        if obj is None:
            raise errors.not_found(k.plural, name, k.group)
        return obj

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        """A copy of one object; raises APIError 404 if absent."""
        return clone(self.get_ref(kind, namespace, name))

    def list_refs(
        self,
        kind: str,
        namespace: str | None = None,
        labels: list[Requirement] | None = None,
        fields: list[FieldReq] | None = None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], int, str | None, int | None]:
        """Matching stored objects in key order, the list resourceVersion, the next continue token
        and remainingItemCount (both only when ``limit`` cut the list)."""
        start = ""
        with self.lock:
            rv = self._rv
            if continue_token:
                rv, start = decode_continue(continue_token)
                if rv < self._compacted:
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter.")
            objs = self._objs[kind]
            keys = sorted(objs)
            items = [objs[k] for k in keys]
        prefix = f"{namespace}/" if namespace and KINDS[kind].namespaced else None
        out: list[Obj] = []
        next_token = None
        remaining = None
        for i, obj in enumerate(items):
            key = keys[i]
            if start and key + "\x00" < start:
                continue
            if start and key + "\x00" == start:
                continue
            if prefix is not None and not key.startswith(prefix):
                continue
            if labels and not labels_match(labels, obj):
                continue
            if fields and not fields_match(fields, obj):
                continue
            if limit and len(out) >= limit:
                next_token = encode_continue(rv, object_key(out[-1]))
                rest = items[i:]
                remaining = sum(
                    1 for o in rest
                    if (prefix is None or object_key(o).startswith(prefix))
                    and (not labels or labels_match(labels, o))
                    and (not fields or fields_match(fields, o))
                )
                break
            out.append(obj)
        return out, rv, next_token, remaining

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of all objects of a kind (optionally in one namespace)."""
        return clone(self.list_refs(kind, namespace)[0])

    def events_since(self, rv: int) -> list[Event]:
        """Events newer than ``rv``; raises 410 Expired when they are no longer all kept."""
        with self.lock:
            if rv < self._compacted:
                raise errors.expired(f"too old resource version: {rv} ({self._compacted})")
            return [e for e in self._history if e.rv > rv]

    def subscribe(self, fn: Callable[[Event | None, int], None]) -> None:
        """Call ``fn(event, rv)`` under the lock for each commit (event None: rv moved silently)."""
        with self.lock:
            self._listeners.append(fn)

    def unsubscribe(self, fn: Callable[[Event | None, int], None]) -> None:
        """Stop calling ``fn``."""
        with self.lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    # ------------------------------------------------------------------ writing

    def _commit(self, etype: str, kind: str, obj: Obj, old: Obj | None, key: str) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if etype == "DELETED":
            self._objs[kind].pop(key, None)
        else:
            self._objs[kind][key] = obj
        ev = Event(self._rv, etype, kind, obj, old)
        self._history.append(ev)
        while len(self._history) > self._history_size:
            self._compacted = self._history.popleft().rv
        for fn in list(self._listeners):
            fn(ev, self._rv)
        return obj

    def expire_resource_versions(self) -> int:
        """Compact everything: every resourceVersion handed out so far becomes 410 Gone for watches.

        Like etcd compaction after an unrelated write (a real cluster always has some), the counter
        first moves on by one, so even a client that is up to date has to relist."""
        with self.lock:
            self._rv += 1
            self._compacted = self._rv
            self._history.clear()
            for fn in list(self._listeners):
                fn(None, self._rv)
            return self._rv

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        """Create like POST: defaults, uid, timestamps; 409 AlreadyExists; 404 for a missing namespace."""
        with self.lock:
            return clone(self._create(clone(obj), namespace))

    def _create(self, obj: Obj, namespace: str | None) -> Obj:
        """create() on a dict the store may keep; returns the stored object."""
        k = kind_of(obj)
        md = obj.setdefault("metadata", {})
        obj["apiVersion"] = k.api_version
        self._prepare_name(k, obj, namespace)
        with self.lock:
            key = object_key(obj)
            if key in self._objs[k.kind]:
                raise errors.already_exists(k.plural, md["name"], k.group)
            if k.namespaced and md["namespace"] not in self._objs["Namespace"]:
                raise errors.not_found("namespaces", md["namespace"])
            if k.namespaced and self._objs["Namespace"][md["namespace"]]["metadata"].get("deletionTimestamp"):
                raise APIError(403, "Forbidden", f'{k.plural} "{md["name"]}" is forbidden: unable to create '
                               f'new content in namespace {md["namespace"]} because it is being terminated',
                               name=md["name"], kind=k.plural, group=k.group)
            md.pop("resourceVersion", None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_timestamp()
            for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                md.pop(f, None)
            if k.kind in ("EndpointSlice", "Pod"):
                md["generation"] = 1
            else:
                md.pop("generation", None)
            self._default(k, obj, None)
            return self._commit("ADDED", k.kind, obj, None, key)

    def update(self, obj: Obj, namespace: str | None = None, *, check_version: bool = True) -> Obj:
        """Replace like PUT: 404 if absent, 409 Conflict when a given resourceVersion is stale."""
        with self.lock:
            return clone(self._update(clone(obj), namespace, check_version))

    def _update(self, obj: Obj, namespace: str | None, check_version: bool) -> Obj:
        """update() on a dict the store may keep; returns the stored object."""
        k = kind_of(obj)
        md = obj.setdefault("metadata", {})
        obj["apiVersion"] = k.api_version
        if k.namespaced:
            md["namespace"] = md.get("namespace") or namespace or "default"
        else:
            md.pop("namespace", None)
        name = md.get("name")
        if not name:
            raise errors.invalid(k.kind, "", "metadata.name: Required value: name is required", k.group)
        with self.lock:
            key = object_key(obj)
            old = self._objs[k.kind].get(key)
            if old is None:
                raise errors.not_found(k.plural, name, k.group)
            given = md.get("resourceVersion")
            if check_version and given and given != old["metadata"]["resourceVersion"]:
                raise errors.conflict(k.plural, name, k.group)
            omd = old["metadata"]
            md["uid"] = omd["uid"]
            md["creationTimestamp"] = omd["creationTimestamp"]
            if "deletionTimestamp" in omd:
                md["deletionTimestamp"] = omd["deletionTimestamp"]
            if "generation" in omd:
                changed = self._spec_of(k, obj) != self._spec_of(k, old)
                md["generation"] = omd["generation"] + (1 if changed else 0)
            self._default(k, obj, old)
            if self._same(obj, old):
                return old  # a no-op update does not bump the resourceVersion
            return self._commit("MODIFIED", k.kind, obj, old, key)

    def apply(self, obj: Obj, namespace: str | None = None) -> Obj:
        """Create, or replace unconditionally if it exists (handy for fixtures and tests)."""
        with self.lock:
            return clone(self._apply(clone(obj), namespace))

    def _apply(self, obj: Obj, namespace: str | None) -> Obj:
        k = kind_of(obj)
        md = obj.get("metadata") or {}
        ns = (md.get("namespace") or namespace or "default") if k.namespaced else None
        with self.lock:
            try:
                self.get_ref(k.kind, ns, md.get("name", ""))
            except APIError:
                return self._create(obj, namespace)
            return self._update(obj, namespace, False)

    def delete(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        precondition_rv: str | None = None,
        precondition_uid: str | None = None,
    ) -> Obj:
        """Delete immediately (no graceful deletion). A namespace goes Terminating, then takes its
        contents with it: at once, or after ``namespace_delay`` seconds like the namespace controller."""
        k = KINDS[kind]
        with self.lock:
            old = self.get_ref(kind, namespace, name)
            if kind == "Namespace" and old["metadata"].get("deletionTimestamp"):
                return clone(old)  # already terminating
            if precondition_uid and precondition_uid != old["metadata"].get("uid"):
                raise APIError(409, "Conflict",
                               f'Operation cannot be fulfilled on {k.plural} "{name}": Precondition '
                               f"failed: UID in precondition: {precondition_uid}, UID in object meta: "
                               f"{old['metadata'].get('uid')}", name=name, kind=k.plural, group=k.group)
            if precondition_rv and precondition_rv != old["metadata"].get("resourceVersion"):
                raise errors.conflict(k.plural, name, k.group)
            if kind == "Namespace":
                term = clone(old)
                term["metadata"]["deletionTimestamp"] = now_timestamp()
                term["status"] = {"phase": "Terminating"}
                self._commit("MODIFIED", kind, term, old, name)
                if self.namespace_delay > 0:
                    t = threading.Timer(self.namespace_delay, self._finish_namespace, (name, term))
                    t.daemon = True
                    t.start()
                    return clone(term)
                self._finish_namespace(name, term)
                return clone(term)
            gone = clone(old)
            self._release(k, old)
            return clone(self._commit("DELETED", kind, gone, old, object_key(old)))

    def _finish_namespace(self, name: str, term: Obj) -> None:
        with self.lock:
            if self._objs["Namespace"].get(name) is not term:
                return  # replaced meanwhile (apply of a new namespace with this name)
            for other in KINDS.values():
                if other.namespaced:
                    for key in [x for x in self._objs[other.kind] if x.startswith(f"{name}/")]:
                        self.delete(other.kind, name, self._objs[other.kind][key]["metadata"]["name"])
            self._commit("DELETED", "Namespace", clone(term), term, name)

    def load(self, objects: Iterable[Obj]) -> int:
        """Apply many objects: namespaces first, missing namespaces created. Returns the count."""
        objs: list[Obj] = clone(list(objects))
        order = {"Namespace": 0, "Service": 1, "Pod": 2, "Endpoints": 3, "EndpointSlice": 4}
        objs.sort(key=lambda o: order.get(str(o.get("kind")), 9))
        with self.lock:
            for o in objs:
                k = kind_of(o)
                if k.namespaced:
                    ns = (o.get("metadata") or {}).get("namespace") or "default"
                    if ns not in self._objs["Namespace"]:
                        self._create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, None)
                if k.kind == "EndpointSlice":
                    self._link_uids(o)
                self._apply(o, None)
        return len(objs)

    def _link_uids(self, obj: Obj) -> None:
        """Fill the uids that fixture files cannot know: ownerReferences to the Service and
        endpoints' targetRefs to Pods, as the endpointslice controller writes them."""
        ns = (obj.get("metadata") or {}).get("namespace") or "default"

        def uid(kind: str, name: str | None) -> str | None:
            o = self._objs[kind].get(f"{ns}/{name}")
            return o["metadata"]["uid"] if o else None

        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") == "Service" and not ref.get("uid"):
                ref["uid"] = uid("Service", ref.get("name")) or ""
        for ep in obj.get("endpoints") or []:
            tr = ep.get("targetRef")
            if tr and tr.get("kind") == "Pod" and not tr.get("uid") and (u := uid("Pod", tr.get("name"))):
                tr["uid"] = u

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _spec_of(k: Kind, obj: Obj) -> Any:
        if k.kind == "EndpointSlice":
            return {f: obj.get(f) for f in ("addressType", "endpoints", "ports")}
        return obj.get("spec")

    @staticmethod
    def _same(a: Obj, b: Obj) -> bool:
        am = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
        bm = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
        return am == bm and {k: v for k, v in a.items() if k != "metadata"} == {
            k: v for k, v in b.items() if k != "metadata"
        }

    def _prepare_name(self, k: Kind, obj: Obj, namespace: str | None) -> None:
        md = obj["metadata"]
        if k.namespaced:
            ns = md.get("namespace")
            if namespace and ns and ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns or namespace or "default"
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            gen = md.get("generateName")
            if not gen:
                raise errors.invalid(k.kind, "", "metadata.name: Required value: name or generateName is "
                                     "required", k.group)
            md["name"] = gen + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = md["name"]
        problems = name_problems(k.kind, name)
        if problems:
            msgs = [f'metadata.name: Invalid value: "{name}": {p}' for p in problems]
            raise errors.invalid(k.kind, name, msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]", k.group)

    def _default(self, k: Kind, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        for f in ("labels", "annotations"):
            if f in md and not md[f]:
                del md[f]
        if k.kind == "Namespace":
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            if not (old and old.get("status", {}).get("phase") == "Terminating"):
                obj.setdefault("status", {}).setdefault("phase", "Active")
        elif k.kind == "Service":
            self._default_service(obj, old)
        elif k.kind == "Pod":
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("containers", [])
            st = obj.setdefault("status", {})
            st.setdefault("phase", "Pending")
            if st.get("podIP") and not st.get("podIPs"):
                st["podIPs"] = [{"ip": st["podIP"]}]
            elif st.get("podIPs") and not st.get("podIP"):
                st["podIP"] = st["podIPs"][0]["ip"]
        elif k.kind == "EndpointSlice":
            for p in obj.get("ports") or []:
                p.setdefault("name", "")
                p.setdefault("protocol", "TCP")
            # Both fields lack omitempty and etcd keeps protobuf, so an empty list reads back as null.
            obj["endpoints"] = obj.get("endpoints") or None
            obj["ports"] = obj.get("ports") or None
            if not obj.get("addressType"):
                raise errors.invalid(k.kind, md["name"], "addressType: Required value", k.group)

    def _default_service(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.setdefault("spec", {})
        ospec = (old or {}).get("spec") or {}
        stype = spec.setdefault("type", "ClusterIP")
        name = obj["metadata"]["name"]
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if stype != "ExternalName":
                p.setdefault("targetPort", p.get("port"))
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
        if stype == "ExternalName":
            if not spec.get("externalName"):
                raise errors.invalid("Service", name, "spec.externalName: Required value")
            for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(f, None)
            self._release_ips(ospec)
            return
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if old is not None and not spec.get("clusterIP") and not spec.get("clusterIPs") and ospec.get(
                "clusterIPs"):
            # PUT may omit clusterIP; the apiserver keeps the allocated one (it is immutable).
            spec["clusterIP"], spec["clusterIPs"] = ospec["clusterIP"], list(ospec["clusterIPs"])
            spec.setdefault("ipFamilies", list(ospec.get("ipFamilies") or []))
            spec.setdefault("ipFamilyPolicy", ospec.get("ipFamilyPolicy", "SingleStack"))
        ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
        if ips and spec.get("clusterIP") and ips[0] != spec["clusterIP"]:
            raise errors.invalid("Service", name, "spec.clusterIPs[0]: Invalid value: must match clusterIP")
        if ips and ips[0] == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        else:
            fams = list(spec.get("ipFamilies") or [])
            policy = spec.get("ipFamilyPolicy")
            if not fams:
                fams = [f"IPv{ipaddress.ip_address(ip).version}" for ip in ips] or ["IPv4"]
                if policy in ("PreferDualStack", "RequireDualStack") and len(fams) == 1:
                    fams.append("IPv6" if fams[0] == "IPv4" else "IPv4")
            if not policy:
                policy = "RequireDualStack" if len(fams) > 1 else "SingleStack"
            old_ips = set(ospec.get("clusterIPs") or [])
            for ip in ips:
                if ip not in old_ips and ip in self._used_ips:
                    raise errors.invalid("Service", name, f'spec.clusterIPs: Invalid value: ["{ip}"]: failed '
                                         f"to allocate IP {ip}: provided IP is already allocated")
            while len(ips) < len(fams):
                ips.append(self._alloc[6 if fams[len(ips)] == "IPv6" else 4].allocate(self._used_ips))
            self._release_ips(ospec)
            self._used_ips.update(ips)
            spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
            spec["ipFamilies"], spec["ipFamilyPolicy"] = fams, policy
        if stype in ("NodePort", "LoadBalancer"):
            for p in spec.get("ports") or []:
                if not p.get("nodePort"):
                    port = next(n for n in range(30000, 32768) if n not in self._used_node_ports)
                    p["nodePort"] = port
                self._used_node_ports.add(p["nodePort"])
            spec.setdefault("externalTrafficPolicy", "Cluster")

    def _release_ips(self, spec: Obj) -> None:
        for ip in spec.get("clusterIPs") or []:
            self._used_ips.discard(ip)

    def _release(self, k: Kind, obj: Obj) -> None:
        if k.kind == "Service":
            spec = obj.get("spec") or {}
            self._release_ips(spec)
            for p in spec.get("ports") or []:
                self._used_node_ports.discard(p.get("nodePort") or 0)
