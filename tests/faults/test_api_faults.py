"""The Kubernetes API server failing with 500 InternalError, mid-run and at start.

Refused connections, 503, dropped watches and 410 Gone are in tests/test_kubernetes_live.py
(test_api_down_at_startup, test_api_down_later, test_watch_drop_and_410).
"""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest
import trio
from conftest import free_port, http_get, query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects
from test_kubernetes_live import SVC1, addrs, corefile, eventually, service


@pytest.fixture
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


async def test_api_answering_500_mid_run_keeps_serving_the_index(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        api.set_unreachable(True, mode="500")
        await trio.sleep(0.3)  # the watches were aborted; every retry gets 500
        for _ in range(3):
            assert addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}
            assert (await query(p, "nope.ns1.svc.cluster.local.", "A")).rcode() == dns.rcode.NXDOMAIN
        assert srv.instance.ready() == []
        api.create(service("late", clusterIP="10.240.17.19"))  # made while failing: seen after recovery
        api.set_unreachable(False)

        async def caught_up() -> bool:
            return addrs(await query(p, "late.ns1.svc.cluster.local.", "A")) == {"10.240.17.19"}

        await eventually(caught_up, timeout=12)


async def test_api_answering_500_at_start_is_not_ready_then_recovers(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.set_unreachable(True, mode="500")
    ready = f"127.0.0.1:{free_port()}"
    async with running(corefile(kc, "startup_timeout 300ms", extra=f"ready {ready}")) as srv:
        p = srv.port()
        status, _, body = await http_get(int(ready.split(":")[1]), "/ready")
        assert (status, body) == (503, b"kubernetes")
        assert (await query(p, SVC1, "A")).rcode() == dns.rcode.SERVFAIL
        api.set_unreachable(False)

        async def recovered() -> bool:
            return addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}

        await eventually(recovered, timeout=12)
