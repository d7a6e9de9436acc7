"""The memo of computed answers (negatives, fallthrough) goes with every watch event that changes them.

Each case asks a name until its answer is memoised (twice, the second a memo hit), changes the cluster
through the API test server, and waits for the new answer: a stale memo would keep the old one.
"""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest
from conftest import query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from tests.test_kubernetes_live import addrs, corefile, endpoint_slice, eventually, service

OK, NX = dns.rcode.NOERROR, dns.rcode.NXDOMAIN


@pytest.fixture
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


async def memoised(port: int, name: str, qtype: str, rcode: int) -> None:
    for _ in range(2):
        assert (await query(port, name, qtype)).rcode() == rcode


async def test_memo_follows_watch_events(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        name = "memo.ns1.svc.cluster.local."
        # service added: its former NXDOMAIN goes at once
        await memoised(p, name, "A", NX)
        await memoised(p, name, "AAAA", NX)
        api.create(service("memo", clusterIP="10.240.18.1", selector={"app": "memo"}))

        async def has(ips: set[str]) -> bool:
            return addrs(await query(p, name, "A")) == ips

        await eventually(lambda: has({"10.240.18.1"}))
        await memoised(p, name, "AAAA", OK)  # NODATA now, memoised
        # made headless, with endpoints
        await memoised(p, "memo-0.memo.ns1.svc.cluster.local.", "A", NX)
        api.delete("Service", "ns1", "memo")
        await eventually(lambda: _rcode(p, name, NX))
        api.create(service("memo", clusterIP="None", selector={"app": "memo"}))
        sl = endpoint_slice("memo-a", "memo", ["10.9.1.1", "10.9.1.2"])
        sl["endpoints"][0]["hostname"] = "memo-0"
        api.create(sl)
        await eventually(lambda: has({"10.9.1.1", "10.9.1.2"}))
        assert addrs(await query(p, "memo-0.memo.ns1.svc.cluster.local.", "A")) == {"10.9.1.1"}
        # endpoints turning not-ready: the memoised NODATA/NXDOMAIN answers follow
        sl = api.get("EndpointSlice", "ns1", "memo-a")
        for ep in sl["endpoints"]:
            ep["conditions"]["ready"] = False
        api.update(sl)
        await eventually(lambda: _rcode(p, name, NX))
        await memoised(p, name, "A", NX)
        sl = api.get("EndpointSlice", "ns1", "memo-a")
        sl["endpoints"][1]["conditions"]["ready"] = True
        api.update(sl)
        await eventually(lambda: has({"10.9.1.2"}))
        # removed
        api.delete("Service", "ns1", "memo")
        await eventually(lambda: _rcode(p, name, NX))
        # namespace deleted: memoised NODATA of the namespace's empty node turns NXDOMAIN
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "memo-ns"}})
        await eventually(lambda: _rcode(p, "memo-ns.svc.cluster.local.", OK))
        await memoised(p, "memo-ns.svc.cluster.local.", "A", OK)
        await memoised(p, "x.memo-ns.svc.cluster.local.", "A", NX)
        api.create(service("x", "memo-ns", clusterIP="10.240.18.2"))
        await eventually(lambda: _rcode(p, "x.memo-ns.svc.cluster.local.", OK))
        api.delete("Namespace", None, "memo-ns")
        await eventually(lambda: _rcode(p, "memo-ns.svc.cluster.local.", NX))
        assert (await query(p, "x.memo-ns.svc.cluster.local.", "A")).rcode() == NX


async def test_ptr_built_on_ask_follows_watch_events(api, tmp_path: Path) -> None:
    """PTR answers are built on their first ask: every change to their sources drops them."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        cip, ep = "18.18.240.10.in-addr.arpa.", "2.2.9.10.in-addr.arpa."

        async def ptr(name: str, target: str | None) -> bool:
            m = await query(p, name, "PTR")
            if target is None:
                return m.rcode() == NX
            return m.rcode() == OK and {r.target.to_text() for rrset in m.answer for r in rrset} == {target}

        await memoised(p, cip, "PTR", NX)
        await memoised(p, ep, "PTR", NX)
        api.create(service("ptrsvc", clusterIP="10.240.18.18", selector={"app": "ptr"}))
        await eventually(lambda: ptr(cip, "ptrsvc.ns1.svc.cluster.local."))
        api.create(endpoint_slice("ptrsvc-a", "ptrsvc", ["10.9.2.2"]))
        await eventually(lambda: ptr(ep, "10-9-2-2.ptrsvc.ns1.svc.cluster.local."))
        assert await ptr(ep, "10-9-2-2.ptrsvc.ns1.svc.cluster.local.")  # asked again: the kept answer
        sl = api.get("EndpointSlice", "ns1", "ptrsvc-a")
        sl["endpoints"][0]["hostname"] = "named"
        api.update(sl)
        await eventually(lambda: ptr(ep, "named.ptrsvc.ns1.svc.cluster.local."))
        sl = api.get("EndpointSlice", "ns1", "ptrsvc-a")
        sl["endpoints"][0]["conditions"]["ready"] = False
        api.update(sl)
        await eventually(lambda: ptr(ep, None))
        api.delete("Service", "ns1", "ptrsvc")
        await eventually(lambda: ptr(cip, None))


async def test_memo_after_410_relist(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        await eventually(lambda: _true(api.watch_count() >= 3))
        await memoised(p, "during-410.ns1.svc.cluster.local.", "A", NX)
        api.set_unreachable(True)
        api.create(service("during-410", clusterIP="10.240.17.3"))
        api.expire_resource_versions()
        api.set_unreachable(False)
        await eventually(lambda: _rcode(p, "during-410.ns1.svc.cluster.local.", OK), timeout=12)


async def test_memo_hit_keeps_the_client_spelling(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc, "fallthrough in-addr.arpa", extra="whoami")) as srv:
        p = srv.port()
        for spelling in ("nope.NS1.svc.Cluster.LOCAL.", "nope.ns1.svc.cluster.local.", "NOPE.ns1.svc.CLUSTER.local."):
            m = await query(p, spelling, "A")
            assert m.rcode() == NX
            zone = spelling[spelling.lower().index("cluster.local"):]
            assert m.authority[0].name.to_text() == zone  # memo hit or not, the zone as asked
        for _ in range(2):  # fallthrough memoised as "next plugin": whoami answers
            m = await query(p, "9.9.9.9.in-addr.arpa.", "PTR")
            assert m.rcode() == OK and not m.authority


async def _rcode(port: int, name: str, rcode: int) -> bool:
    return (await query(port, name, "A")).rcode() == rcode


async def _true(v: bool) -> bool:
    return v
