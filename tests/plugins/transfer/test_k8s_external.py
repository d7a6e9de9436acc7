"""AXFR of a k8s_external zone (records as CoreDNS 1.14.7's transfer.go sends them on the fixture cluster)."""

from __future__ import annotations

from pathlib import Path

import dns.message
from conftest import running

from .test_handler import xfr


async def test_axfr_of_the_external_zone(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    cf = (f"example.com {{\n transfer {{\n  to *\n }}\n k8s_external example.com {{\n  headless\n }}\n"
          f" kubernetes cluster.local {{\n  kubeconfig {kc}\n  startup_timeout 30s\n }}\n}}\n")
    async with running(cf) as srv:
        msgs = await xfr(srv.port(), dns.message.make_query("example.com.", "AXFR"))
    lines = [rr.to_text() for rr in msgs[0].answer]
    soa = "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 0 7200 1800 86400 5"
    assert lines[0] == lines[-1] == soa
    assert lines[1] == "example.com. 5 IN NS ns1.dns.example.com."
    for expected in ("lb.ns1.example.com. 5 IN A 192.0.2.10",
                     "lb.ns1.example.com. 5 IN CNAME lb.example.com.",
                     "lb.ns1.example.com. 5 IN SRV 0 100 80 lb.ns1.example.com.",
                     "_http._tcp.lb.ns1.example.com. 5 IN SRV 0 100 80 lb.ns1.example.com.",
                     "extip.ns1.example.com. 5 IN A 192.0.2.20",
                     "hdls1.ns1.example.com. 5 IN SRV 0 25 80 hdls1-0.hdls1.ns1.example.com.",
                     "_http._tcp.hdls1.ns1.example.com. 5 IN SRV 0 50 80 hdls1-0.hdls1.ns1.example.com.",
                     "hdls1-0.hdls1.ns1.example.com. 5 IN A 10.244.1.50"):
        assert expected in lines
    # CoreDNS's quirks kept: a hostname ingress gives its CNAME twice (a and aaaa), SRV only once per owner
    assert lines.count("lb.ns1.example.com. 5 IN CNAME lb.example.com.") == 2
    assert sum(1 for ln in lines if ln.startswith("lb.ns1.example.com. 5 IN SRV")) == 1
