"""Unusual but storable Kubernetes objects through the API test server: the server keeps answering.

Services with no ports, unnamed ports, out-of-range ports, IPv6-only, selector-less headless Services
with hand-made EndpointSlices (no endpoints, no ports, FQDN address type, missing conditions, odd
hostnames), 63-character labels, ExternalNames with a trailing dot / an IP literal, pods without an IP.
The objects arrive once through the watch (created after start) and once through the initial list
(after a restart); answers follow the reference where it states them, and `coredns_panics_total`
does not grow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.message
import dns.rcode
import pytest
import trio
from conftest import free_port, query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects
from upstream import Unbound

from pycoredns import metrics

OK, NX, SERVFAIL = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL
NS = "odd"
Z = f"{NS}.svc.cluster.local."
L63 = "l" + "x" * 61 + "l"  # a 63-character DNS-1035 label


@pytest.fixture
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


@pytest.fixture(scope="module")
def upstream():
    with Unbound() as u:
        yield u


def corefile(kc: str, up: str, pods: str = "verified") -> str:
    """kubeadm's Corefile (§5.1) with ephemeral ports, `pods verified` so pods are watched too."""
    return f""".:0 {{
    errors
    ready 127.0.0.1:{free_port()}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods {pods}
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       kubeconfig {kc}
    }}
    forward . {up}
    cache 30 {{
       disable success cluster.local
       disable denial cluster.local
    }}
    loadbalance
}}
"""


def svc(name: str, ns: str = NS, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def eps(name: str, service: str, endpoints: list | None, ports: list | None = None, address_type: str = "IPv4",
        ns: str = NS) -> dict:
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
           "addressType": address_type, "endpoints": endpoints}
    if ports is not None:
        obj["ports"] = ports
    return obj


def pod(name: str, status: dict, ns: str = NS) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": status}


HTTP = [{"name": "http", "port": 80, "protocol": "TCP"}]
ODD_OBJECTS: list[dict] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": L63}},
    svc("noports", clusterIP="10.240.17.1", ports=[]),
    svc("unnamed", clusterIP="10.240.17.2", ports=[{"port": 80}]),
    svc("hugeport", clusterIP="10.240.17.3", ports=[{"name": "big", "port": 70000}, {"name": "max", "port": 65535},
                                                    {"name": "neg", "port": -1}, {"name": "zero", "port": 0}]),
    svc("v6only", clusterIP="fd00:10:240::17", clusterIPs=["fd00:10:240::17"], ipFamilies=["IPv6"], ports=HTTP),
    svc("sctp", clusterIP="10.240.17.4", ports=[{"name": "Mixed-Case", "port": 99, "protocol": "SCTP"}]),
    svc("garbage-extips", clusterIP="10.240.17.5", ports=HTTP, externalIPs=["not-an-ip", "", "1.2.3.4"]),
    svc(L63, clusterIP="10.240.17.6", ports=HTTP),
    svc("in-long-ns", ns=L63, clusterIP="10.240.17.7", ports=HTTP),
    svc("hl-nosel", clusterIP="None", ports=HTTP),
    eps("hl-nosel-1", "hl-nosel", [{"addresses": ["10.244.9.1"]},  # conditions missing: ready
                                   {"addresses": ["10.244.9.2"], "conditions": {}},
                                   {"addresses": ["10.244.9.3"], "conditions": {"ready": None}},
                                   {"addresses": ["10.244.9.4"], "conditions": {"ready": False}}], HTTP),
    svc("hl-empty", clusterIP="None", ports=HTTP),
    eps("hl-empty-1", "hl-empty", None, HTTP),
    svc("hl-noports", clusterIP="None", ports=HTTP),
    eps("hl-noports-1", "hl-noports", [{"addresses": ["10.244.9.10"]}], None),
    svc("hl-fqdn", clusterIP="None", ports=HTTP),
    eps("hl-fqdn-1", "hl-fqdn", [{"addresses": ["foo.example.org"]}], HTTP, address_type="FQDN"),
    svc("hl-hosts", clusterIP="None", ports=HTTP),
    eps("hl-hosts-1", "hl-hosts", [{"addresses": ["10.244.9.20"], "hostname": "Web-0"},
                                   {"addresses": ["10.244.9.21"], "hostname": "bad_host!"},
                                   {"addresses": ["10.244.9.22"], "hostname": L63},
                                   {"addresses": ["10.244.9.23"], "hostname": ""},
                                   {"addresses": ["10.244.9.24", "10.244.9.24"]},
                                   {"addresses": []},
                                   {"addresses": ["300.1.1.1"]},
                                   {"addresses": ["fd00::1"]}],  # an IPv6 address in an IPv4 slice
        [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "", "port": None, "protocol": "TCP"},
         {"port": 99999}]),
    svc("longhost", clusterIP="10.240.17.8", ports=HTTP),
    eps("longhost-1", "longhost", [{"addresses": ["10.244.9.80"], "hostname": "h" * 70},
                                   {"addresses": ["10.244.9.81"], "hostname": "ok"}], HTTP),
    eps("orphan-1", "no-such-service", [{"addresses": ["10.244.9.30"]}], HTTP),
    svc("ext-dot", type="ExternalName", externalName="a.example.org."),
    svc("ext-ip", type="ExternalName", externalName="10.0.0.1"),
    svc("ext-v6ip", type="ExternalName", externalName="fd00::1"),
    svc("ext-self", type="ExternalName", externalName=f"ext-self.{Z}"),
    svc("ext-long", type="ExternalName", externalName=".".join(["a" * 63] * 4)),
    svc("ext-bad", type="ExternalName", externalName="bad..name"),
    svc("ext-space", type="ExternalName", externalName="has space.example"),
    pod("nopodip", {"phase": "Running"}),
    pod("emptypodip", {"phase": "Running", "podIP": ""}),
    pod("badpodip", {"phase": "Running", "podIP": "garbage"}),
    pod("goodpod", {"phase": "Running", "podIP": "10.244.9.40"}),
]
SENTINEL = svc("zz-last", clusterIP="10.240.17.99", ports=HTTP)


def answers(m: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in m.answer for rd in rrset}


# (qname, qtype, rcode, expected answer set or None for "don't check the answer")
EXPECT: list[tuple[str, str, int, set[str] | None]] = [
    (f"noports.{Z}", "A", OK, {"10.240.17.1"}),  # port-less services still answer A
    (f"noports.{Z}", "SRV", OK, set()),  # the sentinel port -1 gives no SRV
    (f"_http._tcp.noports.{Z}", "SRV", NX, None),
    (f"unnamed.{Z}", "A", OK, {"10.240.17.2"}),
    (f"unnamed.{Z}", "SRV", OK, {f"0 100 80 unnamed.{Z}"}),  # bare-name SRV lists unnamed ports
    (f"_http._tcp.unnamed.{Z}", "SRV", NX, None),  # unnamed ports have no named SRV
    (f"hugeport.{Z}", "A", OK, {"10.240.17.3"}),
    (f"_max._tcp.hugeport.{Z}", "SRV", OK, {f"0 100 65535 hugeport.{Z}"}),
    (f"_big._tcp.hugeport.{Z}", "SRV", None, None),
    (f"hugeport.{Z}", "SRV", None, None),
    (f"v6only.{Z}", "AAAA", OK, {"fd00:10:240::17"}),
    (f"v6only.{Z}", "A", OK, set()),
    ("7.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR", OK, {f"v6only.{Z}"}),
    (f"_mixed-case._sctp.sctp.{Z}", "SRV", OK, {f"0 100 99 sctp.{Z}"}),
    (f"garbage-extips.{Z}", "A", OK, {"10.240.17.5"}),
    (f"{L63}.{Z}", "A", OK, {"10.240.17.6"}),
    (f"in-long-ns.{L63}.svc.cluster.local.", "A", OK, {"10.240.17.7"}),
    (f"hl-nosel.{Z}", "A", OK, {"10.244.9.1", "10.244.9.2", "10.244.9.3"}),  # unset ready counts as ready
    (f"10-244-9-4.hl-nosel.{Z}", "A", NX, None),  # not ready: invisible
    (f"hl-empty.{Z}", "A", NX, None),  # headless without ready endpoints
    (f"hl-empty.{Z}", "SRV", NX, None),
    (f"hl-noports.{Z}", "A", OK, {"10.244.9.10"}),
    (f"hl-noports.{Z}", "SRV", OK, set()),  # a slice with no ports: addresses, no SRV
    (f"hl-fqdn.{Z}", "A", None, None),
    (f"web-0.hl-hosts.{Z}", "A", OK, {"10.244.9.20"}),  # names compare case-insensitively
    (f"{L63}.hl-hosts.{Z}", "A", OK, {"10.244.9.22"}),
    (f"10-244-9-24.hl-hosts.{Z}", "A", OK, {"10.244.9.24"}),
    (f"hl-hosts.{Z}", "A", None, None),
    (f"hl-hosts.{Z}", "SRV", None, None),
    (f"hl-hosts.{Z}", "AAAA", None, None),
    ("20.9.244.10.in-addr.arpa.", "PTR", OK, {f"web-0.hl-hosts.{Z}"}),
    (f"longhost.{Z}", "A", OK, {"10.240.17.8"}),  # one endpoint's impossible hostname does not hide the service
    (f"10-244-9-80.longhost.{Z}", "A", OK, {"10.244.9.80"}),
    (f"ok.longhost.{Z}", "A", OK, {"10.244.9.81"}),
    (f"ext-dot.{Z}", "CNAME", OK, {"a.example.org."}),  # made absolute once, no double dot
    (f"ext-dot.{Z}", "A", OK, {"a.example.org.", "192.0.2.1"}),
    (f"ext-ip.{Z}", "A", NX, None),  # an IP literal produces nothing
    (f"ext-ip.{Z}", "CNAME", NX, None),
    (f"ext-v6ip.{Z}", "AAAA", NX, None),
    (f"ext-self.{Z}", "A", None, None),
    (f"ext-long.{Z}", "A", None, None),
    (f"ext-bad.{Z}", "A", None, None),
    (f"ext-space.{Z}", "A", None, None),
    ("10-244-9-40.odd.pod.cluster.local.", "A", OK, {"10.244.9.40"}),
    ("10-244-9-41.odd.pod.cluster.local.", "A", NX, None),  # pods verified: no pod has that IP
    ("garbage.odd.pod.cluster.local.", "A", NX, None),
    ("svc1.ns1.svc.cluster.local.", "A", OK, {"10.240.16.101"}),
]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `check` every 50 ms until true; fail after `timeout` (bounded)."""
    with trio.move_on_after(timeout):
        for _ in range(int(timeout / 0.05) + 1):
            if await check():
                return
            await trio.sleep(0.05)
    assert await check(), "condition not reached in time"


def create_all(api: APIServer, objs: list[dict]) -> list[str]:
    """Create what the API server accepts (it validates like the real one in places); names it refused."""
    refused = []
    for obj in objs:
        try:
            api.create(obj)
        except Exception:  # APIError: the real apiserver would refuse it too
            refused.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return refused


async def check_all(port: int) -> list[str]:
    bad = []
    for tcp in (False, True):
        for name, qtype, rcode, want in EXPECT:
            m = await query(port, name, qtype, tcp=tcp)
            if rcode is not None and m.rcode() != rcode:
                bad.append(f"{name} {qtype} tcp={tcp}: rcode {dns.rcode.to_text(m.rcode())}")
            elif rcode is None and m.rcode() == SERVFAIL:
                bad.append(f"{name} {qtype} tcp={tcp}: SERVFAIL")
            elif want is not None and answers(m) != want:
                bad.append(f"{name} {qtype} tcp={tcp}: {sorted(answers(m))}")
    return bad


async def test_odd_objects_through_watch_and_list(api, upstream, tmp_path: Path):
    kc = str(api.write_kubeconfig(tmp_path / "kc"))
    panics = metrics.panics_total.get()
    async with running(corefile(kc, upstream.addr)) as srv:
        port = srv.port()
        refused = create_all(api, ODD_OBJECTS)
        assert refused == [], refused  # all of these are storable
        api.create(SENTINEL)

        async def synced() -> bool:
            return answers(await query(port, f"zz-last.{Z}", "A")) == {"10.240.17.99"}

        await eventually(synced)
        assert await check_all(port) == []
        assert await srv.restart() is None  # a new configuration lists everything from scratch
        await eventually(synced)
        assert await check_all(port) == []
    assert metrics.panics_total.get() == panics


async def test_objects_in_a_namespace_that_does_not_exist(api, upstream, tmp_path: Path):
    """Objects whose namespace is missing (the API refuses them, or they are there without it): NXDOMAIN."""
    kc = str(api.write_kubeconfig(tmp_path / "kc"))
    panics = metrics.panics_total.get()
    async with running(corefile(kc, upstream.addr, pods="insecure")) as srv:
        port = srv.port()
        create_all(api, [svc("ghost", ns="nowhere", clusterIP="10.240.17.50", ports=HTTP),
                         eps("ghost-1", "ghost", [{"addresses": ["10.244.9.50"]}], HTTP, ns="nowhere")])
        api.create(svc("zz-last", ns="ns1", clusterIP="10.240.17.99", ports=HTTP))

        async def synced() -> bool:
            return answers(await query(port, "zz-last.ns1.svc.cluster.local.", "A")) == {"10.240.17.99"}

        await eventually(synced)
        for name in ("ghost.nowhere.svc.cluster.local.", "10-244-9-50.ghost.nowhere.svc.cluster.local.",
                     "10-244-9-50.nowhere.pod.cluster.local."):
            m = await query(port, name, "A")
            assert m.rcode() == NX, (name, dns.rcode.to_text(m.rcode()))
    assert metrics.panics_total.get() == panics


async def test_objects_changing_shape_under_the_watch(api, upstream, tmp_path: Path):
    """A Service flipping ClusterIP → headless → ExternalName → ports removed, and slices emptied: no panic."""
    kc = str(api.write_kubeconfig(tmp_path / "kc"))
    panics = metrics.panics_total.get()
    async with running(corefile(kc, upstream.addr)) as srv:
        port = srv.port()
        name = f"shift.{Z}"
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        api.create(svc("shift", clusterIP="10.240.17.60", ports=HTTP))
        api.create(eps("shift-1", "shift", [{"addresses": ["10.244.9.60"]}], HTTP))
        await eventually(lambda: _answers_are(port, name, "A", {"10.240.17.60"}))
        api.delete("Service", NS, "shift")
        api.create(svc("shift", clusterIP="None", ports=HTTP))
        await eventually(lambda: _answers_are(port, name, "A", {"10.244.9.60"}))
        slice_ = api.get("EndpointSlice", NS, "shift-1")
        slice_["endpoints"], slice_["ports"] = None, None
        api.update(slice_)
        await eventually(lambda: _rcode_is(port, name, "A", NX))
        api.delete("Service", NS, "shift")
        api.create(svc("shift", type="ExternalName", externalName="a.example.org"))
        await eventually(lambda: _answers_are(port, name, "CNAME", {"a.example.org."}))
        api.delete("EndpointSlice", NS, "shift-1")
        api.delete("Service", NS, "shift")
        await eventually(lambda: _rcode_is(port, name, "A", NX))
        assert answers(await query(port, "svc1.ns1.svc.cluster.local.", "A")) == {"10.240.16.101"}
    assert metrics.panics_total.get() == panics


async def _answers_are(port: int, name: str, qtype: str, want: set[str]) -> bool:
    return answers(await query(port, name, qtype)) == want


async def _rcode_is(port: int, name: str, qtype: str, rcode: int) -> bool:
    return (await query(port, name, qtype)).rcode() == rcode
