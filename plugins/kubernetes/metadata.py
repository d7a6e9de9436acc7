"""Request metadata for the `metadata` plugin (CoreDNS's kubernetes/metadata.go).

`metadata` collects from every handler of the block with `metadata(req) -> Mapping[str, str]`; this
mixin gives the kubernetes handler that method: the client's pod (with `pods verified`, which keeps
the pod index) and the parts of a query name inside the cluster zones.
"""

from __future__ import annotations

from typing import Any

from pycoredns.util import zone_match

INVALID = "invalid query name"  # CoreDNS's errInvalidRequest


def parse_request(name: str, zone: str) -> dict[str, str] | str:
    """CoreDNS's parseRequest without multicluster and zonal names: the labels, or an error text."""
    base = name[: len(name) - len(zone)].rstrip(".")
    r = {"port-name": "", "protocol": "", "endpoint": "", "service": "", "namespace": "", "kind": ""}
    if base in ("", "svc", "pod"):
        return r
    segs = base.split(".")
    r["kind"] = segs.pop()
    if r["kind"] not in ("svc", "pod"):
        return INVALID
    for key in ("namespace", "service"):
        if not segs:
            return r
        r[key] = segs.pop()
    if len(segs) == 1:
        r["endpoint"] = segs[0]
    elif len(segs) == 2:
        r["port-name"], r["protocol"] = (s[1:] if s.startswith("_") else s for s in segs)
    elif segs:
        return INVALID
    return r


class MetadataMixin:
    """Mixed into the Kubernetes handler: `zones` and `index` come from it."""

    zones: list[str]
    index: Any

    def metadata(self, req: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        idx = self.index
        ip = req.remote[0]
        if idx is not None and idx.pods:
            pod = next((p for p in idx.pods.values() if p.ip == ip), None)
            if pod is not None:
                out["kubernetes/client-namespace"] = pod.ns
                out["kubernetes/client-pod-name"] = pod.name
        zone = zone_match(self.zones, req.name)
        if zone is None:
            return out
        parsed = parse_request(req.name, zone)
        if isinstance(parsed, str):
            out["kubernetes/parse-error"] = parsed
            return out
        out.update({f"kubernetes/{k}": v for k, v in parsed.items()})
        return out
