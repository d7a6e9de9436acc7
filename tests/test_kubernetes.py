"""kubernetes plugin against the Kubernetes API test server (fixture cluster): records, options, errors.

Live behaviour (watch changes, drops, 410, API outages) is in test_kubernetes_live.py.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from conftest import query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from pycoredns.instance import StartupError

NX, OK = dns.rcode.NXDOMAIN, dns.rcode.NOERROR


@pytest.fixture(scope="module")
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


@pytest.fixture
def kubeconfig(api, tmp_path: Path) -> str:
    return str(api.write_kubeconfig(tmp_path / "kubeconfig"))


def corefile(kc: str, options: str = "", zones: str = "cluster.local in-addr.arpa ip6.arpa", extra: str = "") -> str:
    # a generous startup_timeout (returns at the sync) keeps a loaded machine from flaking the tests
    return f""".:0 {{
    kubernetes {zones} {{
        kubeconfig {kc}
        startup_timeout 30s
        {options}
    }}
    {extra}
}}
"""


def answers(m: dns.message.Message) -> set[tuple[str, str, str]]:
    return {(rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
            for rrset in m.answer for rd in rrset}


def check_negative(m: dns.message.Message, rcode: int, zone: str = "cluster.local.") -> None:
    assert m.rcode() == rcode, (m.question, dns.rcode.to_text(m.rcode()))
    assert m.flags & dns.flags.AA
    assert not m.answer
    assert len(m.authority) == 1 and m.authority[0].rdtype == dns.rdatatype.SOA
    assert m.authority[0].name.to_text().lower() == zone


CL = "cluster.local."
SVC1_NAME = "svc1.ns1.svc.cluster.local."
# (qname, qtype, rcode, expected answer rdata texts (None: negative with SOA))
TABLE = [
    # ClusterIP service: A, no AAAA, SRV per named port, bare-name SRV over every port
    ("svc1.ns1.svc.cluster.local.", "A", OK, {"10.240.16.101"}),
    ("svc1.ns1.svc.cluster.local.", "AAAA", OK, None),
    ("svc1.ns1.svc.cluster.local.", "TXT", OK, None),
    ("svc1.ns1.svc.cluster.local.", "MX", OK, None),
    ("_http._tcp.svc1.ns1.svc.cluster.local.", "SRV", OK, {"0 100 80 svc1.ns1.svc.cluster.local."}),
    # CoreDNS strips one optional underscore from the port and protocol labels
    ("http.tcp.svc1.ns1.svc.cluster.local.", "SRV", OK, {"0 100 80 svc1.ns1.svc.cluster.local."}),
    ("_http.tcp.svc1.ns1.svc.cluster.local.", "SRV", OK, {"0 100 80 svc1.ns1.svc.cluster.local."}),
    ("https.tcp.svc1.ns1.svc.cluster.local.", "SRV", NX, None),
    ("_http._udp.svc1.ns1.svc.cluster.local.", "SRV", NX, None),
    ("_HTTP._TCP.svc1.ns1.svc.cluster.local.", "SRV", OK, {"0 100 80 svc1.ns1.svc.cluster.local."}),
    ("_http._tcp.svc1.ns1.svc.CLUSTER.local.", "SRV", OK, {"0 100 80 svc1.ns1.svc.CLUSTER.local."}),
    ("svc1.ns1.svc.cluster.local.", "SRV", OK, {"0 50 80 svc1.ns1.svc.cluster.local.",
                                                  "0 50 53 svc1.ns1.svc.cluster.local."}),
    ("multiport.ns1.svc.cluster.local.", "SRV", OK, {"0 25 80 multiport.ns1.svc.cluster.local.",
                                                       "0 25 443 multiport.ns1.svc.cluster.local.",
                                                       "0 25 53 multiport.ns1.svc.cluster.local."}),
    ("svc1.ns2.svc.cluster.local.", "A", OK, {"10.240.16.201"}),
    ("dualstack.ns1.svc.cluster.local.", "A", OK, {"10.240.16.104"}),
    ("dualstack.ns1.svc.cluster.local.", "AAAA", OK, {"fd00:10:240::104"}),
    # endpoint names under a ClusterIP service
    ("10-244-1-10.svc1.ns1.svc.cluster.local.", "A", OK, {"10.244.1.10"}),
    ("svc1-5d8f7c9b4-aaaaa.svc1.ns1.svc.cluster.local.", "A", NX, None),  # pod names need endpoint_pod_names
    # headless: ready endpoints only, hostnames, dashed IPs, SRV per endpoint x port
    ("hdls1.ns1.svc.cluster.local.", "A", OK, {"10.244.1.50", "10.244.1.51"}),
    ("hdls1.ns1.svc.cluster.local.", "AAAA", OK, None),
    ("hdls1-0.hdls1.ns1.svc.cluster.local.", "A", OK, {"10.244.1.50"}),
    ("10-244-1-51.hdls1.ns1.svc.cluster.local.", "A", OK, {"10.244.1.51"}),
    ("hdls1-2.hdls1.ns1.svc.cluster.local.", "A", NX, None),  # not ready
    ("_http._tcp.hdls1.ns1.svc.cluster.local.", "SRV", OK, {"0 50 80 hdls1-0.hdls1.ns1.svc.cluster.local.",
                                                              "0 50 80 10-244-1-51.hdls1.ns1.svc.cluster.local."}),
    ("hdls-v6.ns1.svc.cluster.local.", "AAAA", OK, {"fd00:10:244:1::60", "fd00:10:244:1::61"}),
    ("fd00-10-244-1--61.hdls-v6.ns1.svc.cluster.local.", "AAAA", OK, {"fd00:10:244:1::61"}),
    ("hdls-notready.ns1.svc.cluster.local.", "A", NX, None),
    ("hdls-empty.ns1.svc.cluster.local.", "A", NX, None),
    ("hdls-empty.ns1.svc.cluster.local.", "SRV", NX, None),
    ("noports.ns1.svc.cluster.local.", "A", OK, {"10.244.1.30"}),
    ("noports.ns1.svc.cluster.local.", "SRV", OK, None),
    ("multislice.ns1.svc.cluster.local.", "A", OK, {"10.240.16.110"}),
    ("10-244-1-82.multislice.ns1.svc.cluster.local.", "A", OK, {"10.244.1.82"}),
    # ExternalName
    ("ext.ns1.svc.cluster.local.", "CNAME", OK, {"example.net."}),
    ("ext.ns1.svc.cluster.local.", "SRV", OK, None),
    ("_http._tcp.ext.ns1.svc.cluster.local.", "SRV", NX, None),
    ("x.ext.ns1.svc.cluster.local.", "A", NX, None),
    ("ext-internal.ns1.svc.cluster.local.", "A", OK, {"svc1.ns1.svc.cluster.local.", "10.240.16.101"}),
    # structure: apex, svc, pod, namespaces, invalid names, TXT quirk
    (CL, "A", OK, None),
    (CL, "TXT", NX, None),
    (CL, "SOA", OK, {"ns.dns.cluster.local. hostmaster.cluster.local."}),
    ("svc.cluster.local.", "A", OK, None),
    ("svc.cluster.local.", "TXT", NX, None),
    ("pod.cluster.local.", "A", OK, None),
    ("ns1.svc.cluster.local.", "A", OK, None),
    ("ns1.svc.cluster.local.", "TXT", NX, None),
    ("nope.svc.cluster.local.", "A", NX, None),
    ("svc1.nope.svc.cluster.local.", "A", NX, None),
    ("nope.ns1.svc.cluster.local.", "A", NX, None),
    ("kubernetes.default.ns1.svc.cluster.local.", "A", NX, None),
    ("foo.cluster.local.", "A", NX, None),
    ("a.b.c.d.svc1.ns1.svc.cluster.local.", "A", NX, None),
    ("*.ns1.svc.cluster.local.", "A", NX, None),
    ("dns-version.cluster.local.", "TXT", OK, {'"1.1.0"'}),
    ("dns-version.cluster.local.", "A", NX, None),
    ("svc1.ns1.svc.cluster.local.", "HTTPS", OK, None),
    ("nope.ns1.svc.cluster.local.", "SOA", OK, None),  # SOA below the apex: NODATA without looking
    ("9.9.9.9.in-addr.arpa.", "SOA", OK, None),
    ("nope.ns1.svc.cluster.local.", "HTTPS", NX, None),
    # pods insecure
    ("10-244-9-9.ns1.pod.cluster.local.", "A", OK, {"10.244.9.9"}),
    ("10-244-9-9.ns1.pod.cluster.local.", "AAAA", OK, None),
    ("fd00-10--1.ns1.pod.cluster.local.", "AAAA", OK, {"fd00:10::1"}),
    ("not-an-ip.ns1.pod.cluster.local.", "A", NX, None),
    ("10-244-9-9.ns1.pod.cluster.local.", "SRV", OK, {"0 100 0 10-244-9-9.ns1.pod.cluster.local."}),  # CoreDNS
    ("ns.dns.cluster.local.", "SRV", OK, None),  # CoreDNS's isDefaultNS: NODATA but for TXT and PTR
    ("ns.dns.cluster.local.", "PTR", NX, None),
    ("10-244-9-9.nope.pod.cluster.local.", "A", NX, None),
    # reverse
    ("101.16.240.10.in-addr.arpa.", "PTR", OK, {"svc1.ns1.svc.cluster.local."}),
    ("10.1.244.10.in-addr.arpa.", "PTR", OK, {"10-244-1-10.svc1.ns1.svc.cluster.local."}),
    ("50.1.244.10.in-addr.arpa.", "PTR", OK, {"hdls1-0.hdls1.ns1.svc.cluster.local."}),
    (ipaddress.ip_address("fd00:10:240::104").reverse_pointer + ".", "PTR", OK, {"dualstack.ns1.svc.cluster.local."}),
    (ipaddress.ip_address("fd00:10:244:1::61").reverse_pointer + ".", "PTR", OK,
     {"fd00-10-244-1--61.hdls-v6.ns1.svc.cluster.local."}),
    ("52.1.244.10.in-addr.arpa.", "PTR", NX, None),  # not-ready endpoint
    ("101.16.240.10.in-addr.arpa.", "A", NX, None),  # below a reverse zone only PTR exists (CoreDNS)
    ("9.9.9.9.in-addr.arpa.", "PTR", NX, None),
]


async def test_record_table(api, kubeconfig) -> None:
    async with running(corefile(kubeconfig, "pods insecure\n        ttl 30")) as srv:
        for name, qtype, rcode, expected in TABLE:
            m = await query(srv.port(), name, qtype)
            if expected is None:
                zone = name[name.index("in-addr.arpa"):] if "in-addr" in name else (
                    "ip6.arpa." if "ip6.arpa" in name else CL)
                check_negative(m, rcode, zone)
                assert m.authority[0].ttl == 30
                assert m.authority[0][0].minimum == 30
                continue
            assert m.rcode() == rcode, (name, qtype, dns.rcode.to_text(m.rcode()))
            assert m.flags & dns.flags.AA and not m.flags & dns.flags.RA
            got = {rd for _n, _t, rd in answers(m)}
            if qtype == "SOA":
                got = {" ".join(r.split()[:2]) for r in got}
            assert got == expected, (name, qtype, got)
            assert not m.authority
            for rrset in m.answer:
                assert rrset.ttl == (28800 if name.startswith("dns-version") else 30), (name, rrset)


async def test_srv_additionals_and_case(api, kubeconfig) -> None:
    async with running(corefile(kubeconfig)) as srv:
        m = await query(srv.port(), "_http._tcp.hdls1.ns1.svc.cluster.local.", "SRV")
        extra = {(r.name.to_text(), rd.to_text()) for r in m.additional for rd in r}
        assert extra == {("hdls1-0.hdls1.ns1.svc.cluster.local.", "10.244.1.50"),
                         ("10-244-1-51.hdls1.ns1.svc.cluster.local.", "10.244.1.51")}
        m = await query(srv.port(), "DualStack.NS1.svc.Cluster.Local.", "SRV")
        assert m.answer[0].name.to_text() == "DualStack.NS1.svc.Cluster.Local."  # owner keeps the query's case
        glue = {(r.name.to_text(), rd.to_text()) for r in m.additional for rd in r}
        # the glue owner points into the question: the zone keeps the client's spelling
        assert glue == {("dualstack.ns1.svc.Cluster.Local.", "10.240.16.104"),
                        ("dualstack.ns1.svc.Cluster.Local.", "fd00:10:240::104")}
        assert m.answer[0].ttl == 5  # default ttl
        m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A", tcp=True)
        assert answers(m) == {("svc1.ns1.svc.cluster.local.", "A", "10.240.16.101")}
        m = await query(srv.port(), "cluster.local.", "SOA")
        soa = m.answer[0][0]
        assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (7200, 1800, 86400, 5)
        assert soa.serial > 0
        m = await query(srv.port(), "cluster.local.", "NS")
        assert m.rcode() == OK and m.answer[0][0].target.to_text() == "ns.dns.cluster.local."
        m = await query(srv.port(), "cluster.local.", "AXFR", tcp=True)
        assert m.rcode() == dns.rcode.REFUSED
        m = await query(srv.port(), "example.org.", "A")  # outside the zones: no next plugin
        assert m.rcode() == dns.rcode.SERVFAIL


async def test_options(api, kubeconfig) -> None:
    opts = "endpoint_pod_names\n ignore empty_service\n namespaces ns1 kube-system\n pods verified\n ttl 0"
    async with running(corefile(kubeconfig, opts)) as srv:
        p = srv.port()
        m = await query(p, "svc1-5d8f7c9b4-aaaaa.svc1.ns1.svc.cluster.local.", "A")
        assert answers(m) == {("svc1-5d8f7c9b4-aaaaa.svc1.ns1.svc.cluster.local.", "A", "10.244.1.10")}
        assert m.answer[0].ttl == 0
        check_negative(await query(p, "10-244-1-10.svc1.ns1.svc.cluster.local.", "A"), NX)
        check_negative(await query(p, "svc1.ns2.svc.cluster.local.", "A"), NX)  # namespace not listed
        check_negative(await query(p, "ns2.svc.cluster.local.", "A"), NX)
        # pods verified: only real pod IPs in that namespace; Succeeded pods are not watched
        m = await query(p, "10-244-1-10.ns1.pod.cluster.local.", "A")
        assert answers(m) == {("10-244-1-10.ns1.pod.cluster.local.", "A", "10.244.1.10")}
        check_negative(await query(p, "10-244-9-9.ns1.pod.cluster.local.", "A"), NX)
        check_negative(await query(p, "10-244-1-90.ns1.pod.cluster.local.", "A"), NX)
        handler = kube_handler(srv)
        assert handler.autopath_search(_req("10.244.1.11")) == [
            "ns1.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", *handler.search, ""]
        assert handler.autopath_search(_req("10.9.9.9")) is None


async def test_noendpoints_labels_pods_disabled(api, kubeconfig) -> None:
    async with running(corefile(kubeconfig, "noendpoints\n namespace_labels env=prod")) as srv:
        p = srv.port()
        check_negative(await query(p, "svc1.ns1.svc.cluster.local.", "A"), NX)  # ns1 filtered out
        m = await query(p, "api.prod.svc.cluster.local.", "A")
        assert answers(m) == {("api.prod.svc.cluster.local.", "A", "10.240.16.150")}
        check_negative(await query(p, "10-244-3-10.api.prod.svc.cluster.local.", "A"), NX)
        check_negative(await query(p, "10-244-3-10.prod.pod.cluster.local.", "A"), NX)  # pods disabled
        check_negative(await query(p, "prod.pod.cluster.local.", "A"), NX)
    async with running(corefile(kubeconfig, "labels provider=kubernetes")) as srv:
        m = await query(srv.port(), "kubernetes.default.svc.cluster.local.", "A")
        assert answers(m) == {("kubernetes.default.svc.cluster.local.", "A", "10.240.16.1")}
        check_negative(await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A"), NX)


async def test_fallthrough_and_zones(api, kubeconfig) -> None:
    cf = corefile(kubeconfig, "fallthrough in-addr.arpa", extra="whoami")
    async with running(cf) as srv:
        p = srv.port()
        m = await query(p, "9.9.9.9.in-addr.arpa.", "PTR")  # falls through to whoami
        assert m.rcode() == OK and not m.answer and m.additional
        m = await query(p, "101.16.240.10.in-addr.arpa.", "PTR")
        assert answers(m) == {("101.16.240.10.in-addr.arpa.", "PTR", "svc1.ns1.svc.cluster.local.")}
        check_negative(await query(p, "nope.ns1.svc.cluster.local.", "A"), NX)  # no fallthrough there
        m = await query(p, "example.org.", "A")  # not our zone: next
        assert m.additional and m.rcode() == OK
        # zones match label by label (CoreDNS's Zones.Matches): the label `a.cluster` is not `cluster`
        m = await query(p, "a\\.cluster.local.", "A")
        assert m.additional and m.rcode() == OK and not m.authority  # whoami, not the apex's NODATA
    # endpoint URL instead of kubeconfig; the block's zone as the default zone
    cf = f"cluster.local:0 {{\n kubernetes {{\n endpoint {api.url}\n startup_timeout 30s\n }}\n}}\n"
    async with running(cf) as srv:
        m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
        assert answers(m) == {("svc1.ns1.svc.cluster.local.", "A", "10.240.16.101")}


async def test_ptr_only_in_reverse_zones(api, kubeconfig) -> None:
    """Without a reverse zone the plugin is not authoritative for PTR: the query goes to the next plugin."""
    async with running(corefile(kubeconfig, zones="cluster.local", extra="whoami")) as srv:
        m = await query(srv.port(), "101.16.240.10.in-addr.arpa.", "PTR")
        assert m.rcode() == OK and not m.answer and m.additional  # whoami's reply
        m = await query(srv.port(), SVC1_NAME, "A")
        assert answers(m) == {(SVC1_NAME, "A", "10.240.16.101")}


async def test_kubeconfig_context(api, tmp_path: Path) -> None:
    kc = str(api.write_kubeconfig(tmp_path / "kc"))
    async with running(corefile(kc + " pycoredns-test")) as srv:
        m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
        assert m.rcode() == OK and answers(m)


@pytest.mark.parametrize(("options", "message"), [
    ("pods maybe", "wrong value for pods: maybe,  must be one of: disabled, verified, insecure"),
    ("upstream", "unknown property 'upstream'"),
    ("resyncperiod 5s", "unknown property 'resyncperiod'"),
    ("transfer to *", "unknown property 'transfer'"),
    ("bogus", "unknown property 'bogus'"),
    ("ttl 3601", "ttl must be in range [0, 3600]: 3601"),
    ("ttl x", 'strconv.Atoi: parsing "x": invalid syntax'),
    ("ignore other", "unable to parse ignore value: 'other'"),
    ("namespaces a\n namespace_labels env=x", "namespaces and namespace_labels cannot both be set"),
    ("multicluster clusterset.local", "multicluster is not supported"),
    ("zonal", "zonal is not supported"),
    ("startup_timeout soon", 'time: invalid duration "soon"'),
    ("labels a=(", "unable to parse label selector value: 'a=('"),
    ("tls a b", "Wrong argument count"),
    ("apiserver_qps x", "apiserver_qps must be a number"),
])
async def test_config_errors(options: str, message: str, tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(StartupError) as e:
        async with running(corefile(str(kc), options)):
            pass
    assert message in str(e.value)


async def test_config_zone_errors(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="non-reverse zone name must be used"):
        async with running(".:0 {\n kubernetes 10.in-addr.arpa 0.0.10.in-addr.arpa\n}\n"):
            pass
    # observed on CoreDNS: the reverse apexes alone pass (IsReverse needs a label before in-addr.arpa.)
    async with running(".:0 {\n kubernetes in-addr.arpa ip6.arpa {\n  endpoint http://127.0.0.1:1\n"
                       "  startup_timeout 0s\n }\n}\n"):
        pass
    with pytest.raises(StartupError, match="No such file"):
        async with running(corefile(str(tmp_path / "missing"))):
            pass


async def test_kubeconfig_errors(api, tmp_path: Path) -> None:
    kc = str(api.write_kubeconfig(tmp_path / "kc"))
    with pytest.raises(StartupError, match="context was not found for specified context: other"):
        async with running(corefile(kc + " other")):
            pass
    (tmp_path / "bad").write_text("[unclosed")
    with pytest.raises(StartupError, match="not YAML"):
        async with running(corefile(str(tmp_path / "bad"))):
            pass


async def test_no_connection_settings_outside_a_cluster(monkeypatch) -> None:
    """Neither kubeconfig nor endpoint, not in a pod: in-cluster config fails and, as in CoreDNS, so
    does the start."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(StartupError, match="plugin/kubernetes: unable to load in-cluster configuration, "
                       "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"):
        async with running(".:0 {\n kubernetes cluster.local {\n  startup_timeout 200ms\n }\n}\n"):
            pass


async def test_unreachable_api_starts_unsynced_after_the_timeout(caplog) -> None:
    """An endpoint that refuses connections: the server starts after startup_timeout with CoreDNS's
    warning (the per-watch retry warnings come too) and answers SERVFAIL until it syncs."""
    import logging

    from conftest import free_port

    from pycoredns.log import ROOT

    logging.getLogger(ROOT).addHandler(caplog.handler)  # pycoredns's loggers do not propagate to the root
    cf = f".:0 {{\n kubernetes cluster.local {{\n  endpoint http://127.0.0.1:{free_port()}\n" \
         "  startup_timeout 300ms\n }\n}\n"
    async with running(cf) as srv:
        m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
        assert m.rcode() == dns.rcode.SERVFAIL and m.flags & dns.flags.AA and m.authority
        assert srv.instance.ready() == ["kubernetes"]
    logging.getLogger(ROOT).removeHandler(caplog.handler)
    assert "plugin/kubernetes: starting server with unsynced Kubernetes API" in caplog.text


async def test_accepted_options(api, kubeconfig) -> None:
    opts = "apiserver_qps 50\n apiserver_burst 100\n apiserver_max_inflight 10\n startup_timeout 20s\n ignore"
    async with running(corefile(kubeconfig, opts)) as srv:
        m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
        assert m.rcode() == OK and answers(m)
        from pycoredns.metrics import REGISTRY

        text = REGISTRY.expose()
        host = api.url.split("://")[1]
        assert f'coredns_kubernetes_rest_client_requests_total{{code="200",host="{host}",method="GET"}}' in text
        assert f'coredns_kubernetes_rest_client_request_duration_seconds_count{{host="{host}",verb="GET"}}' in text
        assert "coredns_kubernetes_rest_client_rate_limiter_duration_seconds_bucket" in text


def kube_handler(srv):
    for block in srv.instance.blocks:
        for h in block.handlers:
            if h.name == "kubernetes":
                return h
    raise AssertionError("no kubernetes handler")


def _req(ip: str):
    from pycoredns.request import Request

    q = dns.message.make_query("x.", "A").to_wire()
    return Request(q, (ip, 5353))
