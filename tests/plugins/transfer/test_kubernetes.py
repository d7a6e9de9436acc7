"""AXFR of the cluster zone out of `kubernetes` (the fixture cluster; records as CoreDNS 1.14.7 sends them)."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
from conftest import running

from .test_handler import xfr


async def test_axfr_of_the_cluster_zone(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    cf = (f"cluster.local {{\n transfer {{\n  to *\n }}\n kubernetes cluster.local {{\n  kubeconfig {kc}\n"
          f"  startup_timeout 30s\n }}\n}}\n")
    async with running(cf) as srv:
        msgs = await xfr(srv.port(), dns.message.make_query("cluster.local.", "AXFR"))
    assert len(msgs) == 1 and msgs[0].rcode() == dns.rcode.NOERROR
    lines = [rr.to_text() for rr in msgs[0].answer]
    assert lines[0].startswith("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. ")
    assert lines[-1] == lines[0]  # (the count depends on this host: ns.dns.<zone> carries its addresses)
    for expected in ("svc1.ns1.svc.cluster.local. 5 IN A 10.240.16.101",
                     "_http._tcp.svc1.ns1.svc.cluster.local. 5 IN SRV 0 100 80 svc1.ns1.svc.cluster.local.",
                     "_http._tcp.hdls1.ns1.svc.cluster.local. 5 IN SRV 0 50 80 hdls1-0.hdls1.ns1.svc.cluster.local.",
                     "ext.ns1.svc.cluster.local. 5 IN CNAME example.net."):
        assert expected in lines
