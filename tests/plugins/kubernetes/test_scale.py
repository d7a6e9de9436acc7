"""Large answers and long names: headless SRV cut as CoreDNS 1.14.7 cuts it, a 1,000-endpoint slice,
63-character names, and events the plugin does not know."""

from __future__ import annotations

import logging
from pathlib import Path

import dns.flags
import dns.message
import pytest
import trio
from conftest import query, running
from pycoredns_conformance.apiserver import APIServer

from plugins.kubernetes import objects
from tests.test_kubernetes_live import corefile, eventually

NS = "bench-9"


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def headless(name: str, ns: str, n: int, hostname: bool = True, base: int = 0) -> list[dict]:
    """A headless service with `n` ready endpoints (hostnames `<name>-<i>`), 100 per slice."""
    objs: list[dict] = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                         "spec": {"clusterIP": "None", "selector": {"app": name},
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}]
    per = 1000 if n > 100 else 100
    for s in range(0, n, per):
        eps = []
        for i in range(s, min(n, s + per)):
            ip = base + i
            ep = {"addresses": [f"10.{100 + ip // 65536}.{ip // 256 % 256}.{ip % 256}"], "conditions": {"ready": True}}
            if hostname:
                ep["hostname"] = f"{name}-{i}"
            eps.append(ep)
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-{s}", "namespace": ns,
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                     "endpoints": eps})
    return objs


@pytest.fixture
def api():
    long_ns = "n" * 63
    objs = [namespace(NS), namespace(long_ns), *headless("svc-9", NS, 10),
            *headless("big", NS, 1000, hostname=False, base=1000),
            *headless("s" * 63, long_ns, 2, base=5000)]
    objs[-1]["endpoints"][0]["hostname"] = "h" * 63
    with APIServer(objs) as server:
        server.start()
        yield server


async def udp_raw(port: int, q: dns.message.Message) -> bytes:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        for _ in range(3):  # a loaded machine may drop one
            await sock.send(q.to_wire())
            with trio.move_on_after(2):
                return await sock.recv(65535)
    raise AssertionError("no answer")


async def test_headless_srv_cut_like_coredns(api, tmp_path: Path) -> None:
    """Sizes and counts measured against CoreDNS 1.14.7 with the same objects (bench/README.md)."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc, extra="loadbalance")) as srv:
        p = srv.port()
        name = f"_http._tcp.svc-9.{NS}.svc.cluster.local."
        data = await udp_raw(p, dns.message.make_query(name, "SRV", use_edns=False))
        m = dns.message.from_wire(data)
        assert m.flags & dns.flags.TC and len(data) == 473
        assert [len(s) for s in m.answer] == [7] and not m.additional  # whole records, none after the cut
        data = await udp_raw(p, dns.message.make_query(name, "SRV", use_edns=0, payload=1232))
        m = dns.message.from_wire(data)
        assert not m.flags & dns.flags.TC and len(data) == 821  # CoreDNS's compressed size, byte for byte
        assert sum(len(s) for s in m.answer) == 10 and sum(len(s) for s in m.additional) == 10
        glue = {r.name.to_text() for r in m.additional}
        assert glue == {f"svc-9-{i}.svc-9.{NS}.svc.cluster.local." for i in range(10)}
        m = await query(p, name, "SRV", tcp=True)
        assert not m.flags & dns.flags.TC
        assert sum(len(s) for s in m.answer) == 10 and sum(len(s) for s in m.additional) == 10


async def test_thousand_endpoint_slice_and_long_names(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc, extra="loadbalance")) as srv:
        p = srv.port()
        big = f"big.{NS}.svc.cluster.local."
        m = await query(p, big, "A", tcp=True)
        assert sum(len(s) for s in m.answer) == 1000
        m = await query(p, big, "A")  # UDP, no EDNS: whole records up to 512 bytes, TC
        assert m.flags & dns.flags.TC and 0 < sum(len(s) for s in m.answer) < 1000
        m = await query(p, f"_http._tcp.{big}", "SRV", tcp=True)  # past 16 KB the glue is not compressed
        assert m.rcode() == 0 and 0 < sum(len(s) for s in m.answer) <= 1000
        m = await query(p, "10-100-3-232.big.bench-9.svc.cluster.local.", "A")
        assert [rd.to_text() for s in m.answer for rd in s] == ["10.100.3.232"]
        m = await query(p, "10-100-3-232.big.bench-9.svc.cluster.local.", "SRV")  # built on the first ask
        assert [rd.to_text() for s in m.answer for rd in s] == ["0 100 80 10-100-3-232.big.bench-9.svc.cluster.local."]
        long = f"{'s' * 63}.{'n' * 63}.svc.cluster.local."
        m = await query(p, long, "A")
        assert sorted(rd.to_text() for s in m.answer for rd in s) == ["10.100.19.136", "10.100.19.137"]
        m = await query(p, f"{'h' * 63}.{long}", "A")
        assert [rd.to_text() for s in m.answer for rd in s] == ["10.100.19.136"]
        m = await query(p, f"_http._tcp.{long}", "SRV", use_edns=0)
        assert sum(len(s) for s in m.answer) == 2


async def test_unknown_kinds_and_odd_events_are_skipped(api, tmp_path: Path) -> None:
    """Events the index does not know are logged and skipped; the watch and the answers carry on."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        k = srv.instance.blocks[0].handler("kubernetes")
        extra = objects.reduce_service({"metadata": {"name": "extra", "namespace": NS},
                                        "spec": {"clusterIP": "10.240.19.9", "ports": [{"port": 80}]}})
        seen: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger("pycoredns.plugin.kubernetes")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)  # whatever earlier tests left on the parent loggers
        try:
            k.deliver([("upsert", "widgets", ("x", "y"), {"odd": True}), ("delete", "gadgets", ("x", "y")),
                       ("upsert",), ("upsert", "services", (NS, "extra"), extra)])
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert sum("skipping API event" in m for m in seen) == 3

        async def still_answers() -> bool:  # the valid event of the batch applied, the rest still serves
            extra_ok = (await query(p, f"extra.{NS}.svc.cluster.local.", "A")).rcode() == 0
            svc9 = await query(p, f"svc-9.{NS}.svc.cluster.local.", "A")
            return extra_ok and sum(len(s) for s in svc9.answer) == 10

        await eventually(still_answers, timeout=10)
