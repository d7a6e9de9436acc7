"""The Kubernetes API server failing with 500 InternalError (mid-run and at start), holding watch
streams open without sending anything, and stalling lists.

Refused connections, 503, dropped watches and 410 Gone are in tests/test_kubernetes_live.py
(test_api_down_at_startup, test_api_down_later, test_watch_drop_and_410).
"""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest
import trio
from conftest import free_port, http_get, query, running
from pycoredns.plugins.kubernetes import watch
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects
from test_kubernetes_live import SVC1, addrs, corefile, eventually, service

from .helpers import metric


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


async def test_api_holding_watches_open_without_events(api, tmp_path: Path, log_lines, monkeypatch) -> None:
    """Watch streams that stay connected but send nothing (no event, no bookmark, no end at their
    timeoutSeconds): the index keeps answering and the server stays ready; each stream silent for
    its timeout plus a grace is dropped with a warning and watched again from its resourceVersion,
    which catches up once the API sends again. (Timeout 2 s + grace 1 s here; 300-600 s + 30 s.)"""
    monkeypatch.setattr(watch, "WATCH_TIMEOUT", (2, 2))
    monkeypatch.setattr(watch, "WATCH_GRACE", 1.0)
    kc = api.write_kubeconfig(tmp_path / "kc")
    mport = free_port()
    async with running(corefile(kc, extra=f"prometheus 127.0.0.1:{mport}")) as srv:
        p = srv.port()
        await eventually(lambda: _true(api.watch_count() >= 3))
        assert api.hold_watches() >= 3
        api.create(service("while-held", clusterIP="10.240.17.20"))
        watches_before = await metric(mport, "coredns_kubernetes_rest_client_requests_total", 'code="200"')

        def warned() -> list[str]:
            return [line for line in log_lines if "nothing received for 3s" in line]

        await eventually(lambda: _true(len(warned()) >= 3), timeout=10)  # every kind's stream, once
        assert "[WARNING] plugin/kubernetes: watch of services: nothing received for 3s (its timeout was 2s), " \
               "watching again from resourceVersion" in "\n".join(log_lines)
        for _ in range(3):  # the watches started again are silent too: the index answers as it was
            assert addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}
            assert (await query(p, "while-held.ns1.svc.cluster.local.", "A")).rcode() == dns.rcode.NXDOMAIN
        assert srv.instance.ready() == []

        async def watched_again() -> bool:  # each GET that started a watch again is counted (200)
            return await metric(mport, "coredns_kubernetes_rest_client_requests_total",
                                'code="200"') >= watches_before + 3

        await eventually(watched_again, timeout=10)
        api.hold_watches(False)

        async def caught_up() -> bool:
            return addrs(await query(p, "while-held.ns1.svc.cluster.local.", "A")) == {"10.240.17.20"}

        await eventually(caught_up, timeout=10)  # the next silent stream times out, the next watch sends
        assert not [line for line in log_lines if "failed" in line]


async def test_api_stalling_a_relist_keeps_serving_the_index(api, tmp_path: Path) -> None:
    """History compacted and the watches dropped: the resume gets 410 Gone and the client relists,
    but the list does not answer. The old index keeps answering and the server stays ready; when
    the list answers, the changes made meanwhile are served."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        await eventually(lambda: _true(api.watch_count() >= 3))
        api.stall_lists()
        api.expire_resource_versions()
        api.drop_watches()
        api.create(service("after-relist", clusterIP="10.240.17.21"))  # after the drop: only a list has it

        async def relisting() -> bool:
            return any("watch=" not in path and "limit=" in path and method == "GET"
                       for method, path in api.requests()[-20:])

        await eventually(relisting, timeout=10)
        for _ in range(3):
            assert addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}
            assert (await query(p, "after-relist.ns1.svc.cluster.local.", "A")).rcode() == dns.rcode.NXDOMAIN
            await trio.sleep(0.2)
        assert srv.instance.ready() == []
        api.stall_lists(False)

        async def caught_up() -> bool:
            return addrs(await query(p, "after-relist.ns1.svc.cluster.local.", "A")) == {"10.240.17.21"}

        await eventually(caught_up, timeout=10)


async def _true(value: bool) -> bool:
    return value
