"""kubernetes as a metadata provider (log lines identical to CoreDNS 1.14.7's on the fixture cluster)."""

from __future__ import annotations

from pathlib import Path

from conftest import query, running

from .test_handler import lines  # noqa: F401 - the fixture

FMT = ('"META {/kubernetes/kind} {/kubernetes/namespace} {/kubernetes/service} {/kubernetes/endpoint} '
       '{/kubernetes/port-name} {/kubernetes/protocol} {/kubernetes/parse-error} {name}"')



async def test_kubernetes_labels(api, tmp_path: Path, lines) -> None:  # noqa: F811
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    cf = (f".:0 {{\n metadata\n log . {FMT}\n kubernetes cluster.local {{\n  kubeconfig {kc}\n"
          f"  startup_timeout 30s\n }}\n whoami\n}}\n")
    async with running(cf) as srv:
        for name, qtype in (("svc1.ns1.svc.cluster.local.", "A"), ("_http._tcp.svc1.ns1.svc.cluster.local.", "SRV"),
                            ("hdls1-0.hdls1.ns1.svc.cluster.local.", "A"), ("foo.bar.cluster.local.", "A"),
                            ("example.org.", "A")):
            await query(srv.port(), name, qtype)
    assert [ln for ln in lines if ln.startswith("META")] == [
        "META svc ns1 svc1    - svc1.ns1.svc.cluster.local.",
        "META svc ns1 svc1  http tcp - _http._tcp.svc1.ns1.svc.cluster.local.",
        "META svc ns1 hdls1 hdls1-0   - hdls1-0.hdls1.ns1.svc.cluster.local.",
        "META - - - - - - invalid query name foo.bar.cluster.local.",
        "META - - - - - - - example.org.",
    ]
