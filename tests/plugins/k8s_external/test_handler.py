"""k8s_external over the fixture cluster (pycoredns_conformance.apiserver), answers as CoreDNS 1.14.7's."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.rcode
from conftest import query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

SOA = "example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. 0 7200 1800 86400 5"



def corefile(kc: str, options: str = "headless") -> str:
    return f"""example.com:0 2.0.192.in-addr.arpa:0 {{
    k8s_external example.com 2.0.192.in-addr.arpa {{
        {options}
    }}
    kubernetes cluster.local {{
        kubeconfig {kc}
        startup_timeout 30s
    }}
}}
"""


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


async def test_external_names(api, tmp_path: Path) -> None:
    kc = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    async with running(corefile(kc)) as srv:
        p = srv.port()
        r = await query(p, "extip.ns1.example.com.", "A")  # spec.externalIPs
        assert r.flags & dns.flags.AA and texts(r.answer) == ["extip.ns1.example.com. 5 IN A 192.0.2.20"]
        r = await query(p, "lb.ns1.example.com.", "A")  # LoadBalancer ingress: an IP and a hostname
        assert texts(r.answer) == ["lb.ns1.example.com. 5 IN A 192.0.2.10",
                                   "lb.ns1.example.com. 5 IN CNAME lb.example.com."]
        r = await query(p, "lb.ns1.example.com.", "SRV")
        assert sorted(texts(r.answer)) == ["lb.ns1.example.com. 5 IN SRV 0 50 80 lb.example.com.",
                                           "lb.ns1.example.com. 5 IN SRV 0 50 80 lb.ns1.example.com."]
        assert texts(r.additional) == ["lb.ns1.example.com. 5 IN A 192.0.2.10"]
        r = await query(p, "_http._udp.extip.ns1.example.com.", "SRV")
        assert r.rcode() == dns.rcode.NXDOMAIN and texts(r.authority) == [SOA]
        r = await query(p, "svc1.ns1.example.com.", "A")  # ClusterIP only: not external
        assert r.rcode() == dns.rcode.NXDOMAIN and texts(r.authority) == [SOA]
        r = await query(p, "extip.ns1.example.com.", "TXT")
        assert r.rcode() == dns.rcode.NOERROR and texts(r.authority) == [SOA]
        r = await query(p, "20.2.0.192.in-addr.arpa.", "PTR")
        assert texts(r.answer) == ["20.2.0.192.in-addr.arpa. 5 IN PTR extip.ns1.example.com."]


async def test_apex_and_headless(api, tmp_path: Path) -> None:
    kc = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    async with running(corefile(kc)) as srv:
        p = srv.port()
        r = await query(p, "example.com.", "SOA")
        assert texts(r.answer) == [SOA]
        r = await query(p, "example.com.", "NS")
        assert texts(r.answer) == ["example.com. 5 IN NS ns1.dns.example.com."]
        r = await query(p, "dns.example.com.", "A")
        assert r.rcode() == dns.rcode.NOERROR and texts(r.authority) == [SOA]
        r = await query(p, "x.ns1.dns.example.com.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
        r = await query(p, "hdls1.ns1.example.com.", "SRV")
        assert len(r.answer[0]) == 4 and len(r.additional) == 2


async def test_fallthrough_and_ttl(api, tmp_path: Path) -> None:
    kc = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    cf = corefile(kc, "ttl 60\n        fallthrough").replace("    kubernetes", "    whoami\n    kubernetes")
    async with running(cf) as srv:
        p = srv.port()
        r = await query(p, "extip.ns1.example.com.", "A")
        assert texts(r.answer) == ["extip.ns1.example.com. 60 IN A 192.0.2.20"]
        r = await query(p, "nope.ns1.example.com.", "A")  # NXDOMAIN falls through to whoami
        assert r.rcode() == dns.rcode.NOERROR and len(r.additional) == 2


async def test_odd_ingress_hostname_is_skipped(tmp_path: Path) -> None:
    """An ingress hostname no DNS name can carry gets no record (and no SERVFAIL); its IP still answers."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "badlb", "namespace": "ns1"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.240.16.199",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
           "status": {"loadBalancer": {"ingress": [{"hostname": "a..b"}, {"ip": "192.0.2.30"}]}}}
    with APIServer([*load_objects(FIXTURE_CLUSTER), bad]) as server:
        server.start()
        kc = str(server.write_kubeconfig(tmp_path / "kubeconfig"))
        async with running(corefile(kc)) as srv:
            r = await query(srv.port(), "badlb.ns1.example.com.", "A")
            assert r.rcode() == dns.rcode.NOERROR
            assert texts(r.answer) == ["badlb.ns1.example.com. 5 IN A 192.0.2.30"]
            r = await query(srv.port(), "badlb.ns1.example.com.", "SRV")
            assert texts(r.answer) == ["badlb.ns1.example.com. 5 IN SRV 0 50 80 badlb.ns1.example.com."]
