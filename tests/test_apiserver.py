"""The Kubernetes API test server, driven by the real kubernetes-asyncio client over HTTP (and by
plain HTTP where the wire format itself is the point)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import trio
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, generate_cluster, load_objects, parse_text
from pycoredns_conformance.apiserver.patch import strategic_merge_patch
from pycoredns_conformance.apiserver.selectors import labels_match, parse_label_selector

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@pytest.fixture
def api() -> Iterator[APIServer]:
    """The fixture cluster on an ephemeral port with fast bookmarks."""
    srv = APIServer(load_objects(FIXTURE_CLUSTER), bookmark_interval=0.2).start()
    try:
        yield srv
    finally:
        srv.stop()


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an asyncio coroutine (the client is asyncio) with a hard bound."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), 20)

    return asyncio.run(bounded())


@asynccontextmanager
async def k8s(srv: APIServer, tmp: Path | None = None) -> AsyncIterator[client.ApiClient]:
    """A kubernetes-asyncio ApiClient configured from the server's kubeconfig file."""
    import tempfile

    d = Path(tmp or tempfile.mkdtemp())
    path = srv.write_kubeconfig(d / "kubeconfig")
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as c:
        yield c


def http(srv: APIServer, path: str, *, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Plain HTTP: (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def svc(name: str, ns: str = "ns1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": {"t": "1"}},
            "spec": {"ports": [{"name": "http", "port": 80}], **spec}}


def later(delay: float, fn: Callable[[], Any]) -> threading.Thread:
    """Run a mutation from another thread, as a test would while a client watches."""

    def go() -> None:
        time.sleep(delay)
        fn()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------------------------------- discovery


def test_discovery_documents(api: APIServer) -> None:
    async def go() -> None:
        async with k8s(api) as c:
            core = await client.CoreApi(c).get_api_versions()
            assert core.versions == ["v1"]
            groups = await client.ApisApi(c).get_api_versions()
            assert [g.name for g in groups.groups] == ["discovery.k8s.io"]
            assert groups.groups[0].preferred_version.group_version == "discovery.k8s.io/v1"
            res = await client.CoreV1Api(c).get_api_resources()
            names = {r.name: r for r in res.resources}
            assert {"namespaces", "services", "pods", "endpoints"} <= set(names)
            assert names["services"].short_names == ["svc"] and names["services"].namespaced
            assert not names["namespaces"].namespaced
            dres = await client.DiscoveryV1Api(c).get_api_resources()
            assert [r.kind for r in dres.resources] == ["EndpointSlice"]
            ver = await client.VersionApi(c).get_code()
            assert ver.major == "1"

    run(go)
    assert http(api, "/apis/discovery.k8s.io")[1]["kind"] == "APIGroup"
    assert http(api, "/apis/nope.io/v1")[0] == 404


# ---------------------------------------------------------------------------------------- list


def test_list_fixture_cluster(api: APIServer) -> None:
    async def go() -> None:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            ns = await v1.list_namespace()
            assert {n.metadata.name for n in ns.items} == {"default", "kube-system", "ns1", "ns2", "prod"}
            assert ns.metadata.resource_version == str(api.resource_version)
            prod = next(n for n in ns.items if n.metadata.name == "prod")
            assert prod.metadata.labels == {"env": "prod", "kubernetes.io/metadata.name": "prod"}
            assert prod.status.phase == "Active"
            svcs = await v1.list_service_for_all_namespaces()
            by = {(s.metadata.namespace, s.metadata.name): s for s in svcs.items}
            assert by["kube-system", "kube-dns"].spec.cluster_ip == "10.240.16.10"
            assert by["ns1", "dualstack"].spec.cluster_ips == ["10.240.16.104", "fd00:10:240::104"]
            assert by["ns1", "dualstack"].spec.ip_families == ["IPv4", "IPv6"]
            assert by["ns1", "ext"].spec.external_name == "example.net"
            assert by["ns1", "ext"].spec.cluster_ip is None
            assert by["ns1", "hdls1"].spec.cluster_ip == "None"
            assert by["ns1", "lb"].status.load_balancer.ingress[0].ip == "192.0.2.10"
            assert by["ns1", "extip"].spec.external_ips == ["192.0.2.20"]
            assert by["ns1", "svc1"].metadata.uid and by["ns1", "svc1"].metadata.creation_timestamp
            ns1 = await v1.list_namespaced_service("ns1")
            assert all(s.metadata.namespace == "ns1" for s in ns1.items) and len(ns1.items) == 13
            slices = await client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces()
            assert len(slices.items) == 17
            dns = [s for s in slices.items if s.metadata.labels["kubernetes.io/service-name"] == "kube-dns"]
            assert sorted(a for s in dns for e in s.endpoints for a in e.addresses) == ["10.244.0.2", "10.244.0.3"]
            ms = await client.DiscoveryV1Api(c).list_namespaced_endpoint_slice(
                "ns1", label_selector="kubernetes.io/service-name=multislice")
            assert len(ms.items) == 2
            ep = ms.items[0].endpoints[0]
            assert ep.conditions.ready and ep.target_ref.kind == "Pod" and ep.target_ref.uid
            assert ms.items[0].metadata.owner_references[0].uid == by["ns1", "multislice"].metadata.uid
            pods = await v1.list_pod_for_all_namespaces()
            assert len(pods.items) == 16
            ep_list = await v1.list_endpoints_for_all_namespaces()
            assert ep_list.items == []

    run(go)
    # Items in a list carry no kind/apiVersion, exactly like the real apiserver.
    code, body = http(api, "/api/v1/namespaces/ns1/services")
    assert code == 200 and body["kind"] == "ServiceList" and "kind" not in body["items"][0]
    code, body = http(api, "/api/v1/namespaces/ns1/services/svc1")
    assert body["kind"] == "Service" and body["apiVersion"] == "v1"


def test_list_pagination(api: APIServer) -> None:
    seen: list[str] = []
    token = ""
    while True:
        code, body = http(api, "/api/v1/pods?limit=5" + (f"&continue={token}" if token else ""))
        assert code == 200
        seen += [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in body["items"]]
        token = body["metadata"].get("continue", "")
        if not token:
            break
        assert body["metadata"]["remainingItemCount"] > 0
    assert len(seen) == 16 and seen == sorted(seen)
    code, body = http(api, "/api/v1/pods?limit=5")
    api.expire_resource_versions()
    code, gone = http(api, f"/api/v1/pods?limit=5&continue={body['metadata']['continue']}")
    assert code == 410 and gone["reason"] == "Expired"


# ---------------------------------------------------------------------------------------- watch


async def collect(stream: Any, n: int) -> list[dict[str, Any]]:
    out = []
    async for ev in stream:
        out.append(ev)
        if len(out) >= n:
            break
    return out


def test_watch_added_modified_deleted(api: APIServer) -> None:
    def mutate() -> None:
        api.create(svc("w1"))
        cur = api.get("Service", "ns1", "w1")
        cur["metadata"]["labels"]["x"] = "y"
        api.update(cur)
        api.delete("Service", "ns1", "w1")

    async def go() -> list[dict[str, Any]]:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            rv = (await v1.list_namespaced_service("ns1")).metadata.resource_version
            later(0.2, mutate)
            w = watch.Watch()
            async with w:
                evs = await collect(w.stream(v1.list_namespaced_service, "ns1", resource_version=rv,
                                             timeout_seconds=5), 3)
            return evs

    evs = run(go)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"].metadata.name == "w1" for e in evs)
    rvs = [int(e["object"].metadata.resource_version) for e in evs]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert evs[1]["object"].metadata.labels["x"] == "y"
    assert evs[0]["object"].spec.cluster_ip.startswith("10.240.")


def test_watch_without_version_starts_with_current_state(api: APIServer) -> None:
    async def go() -> list[dict[str, Any]]:
        async with k8s(api) as c:
            w = watch.Watch()
            async with w:
                return await collect(w.stream(client.CoreV1Api(c).list_namespace, timeout_seconds=1), 100)

    evs = run(go)
    assert [e["type"] for e in evs] == ["ADDED"] * 5


def test_watch_resumes_from_resource_version(api: APIServer) -> None:
    api.create(svc("r1"))
    rv = api.resource_version
    api.create(svc("r2"))
    api.delete("Service", "ns1", "r1")
    api.create(svc("other", ns="ns2"))  # other namespace: not in this watch

    async def go() -> list[dict[str, Any]]:
        async with k8s(api) as c:
            w = watch.Watch()
            async with w:
                return await collect(w.stream(client.CoreV1Api(c).list_namespaced_service, "ns1",
                                              resource_version=str(rv), timeout_seconds=1), 100)

    evs = run(go)
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [("ADDED", "r2"), ("DELETED", "r1")]


def test_watch_410_after_expire(api: APIServer) -> None:
    old = api.resource_version
    api.expire_resource_versions()

    async def go() -> None:
        async with k8s(api) as c:
            w = watch.Watch()
            async with w:
                with pytest.raises(ApiException) as ei:
                    await collect(w.stream(client.CoreV1Api(c).list_service_for_all_namespaces,
                                           resource_version=str(old), timeout_seconds=2), 1)
            assert ei.value.status == 410
            # The current version still works.
            rv = (await client.CoreV1Api(c).list_service_for_all_namespaces()).metadata.resource_version
            w2 = watch.Watch()
            async with w2:
                evs = await collect(w2.stream(client.CoreV1Api(c).list_service_for_all_namespaces,
                                              resource_version=rv, timeout_seconds=1), 1)
            assert evs == []

    run(go)

    # The exact wire format: HTTP 200, then one ERROR event carrying a 410 Expired Status.
    async def raw() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(
                f"{api.url}/api/v1/services?watch=1&resourceVersion={old}") as r:
            assert r.status == 200
            return [json.loads(line) for line in (await r.read()).splitlines()]

    (ev,) = run(raw)
    assert ev["type"] == "ERROR"
    st = ev["object"]
    assert st["kind"] == "Status" and st["apiVersion"] == "v1" and st["status"] == "Failure"
    assert st["reason"] == "Expired" and st["code"] == 410 and "too old resource version" in st["message"]


def test_future_resource_version_is_too_large(api: APIServer) -> None:
    api.too_large_wait = 1.0
    future = api.resource_version + 2
    later(0.3, lambda: (api.create(svc("f1")), api.create(svc("f2")), api.create(svc("f3"))))
    with urllib.request.urlopen(f"{api.url}/api/v1/services?watch=1&resourceVersion={future}"
                                "&timeoutSeconds=1") as r:
        evs = [json.loads(x) for x in r.read().splitlines()]
    assert [e["object"]["metadata"]["name"] for e in evs] == ["f3"]  # waited, then only newer events
    t0 = time.monotonic()
    code, st = http(api, f"/api/v1/services?resourceVersion={api.resource_version + 5}")
    assert code == 504 and st["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert 0.9 < time.monotonic() - t0 < 10


def test_history_bound_expires_old_versions() -> None:
    with APIServer(history_size=3) as srv:
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
        rv = srv.resource_version
        for i in range(5):
            srv.create(svc(f"s{i}", ns="a"))
        code, _ = http(srv, f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=1")
        assert code == 200
        with urllib.request.urlopen(f"{srv.url}/api/v1/services?watch=1&resourceVersion={rv}") as r:
            assert json.loads(r.readline())["object"]["code"] == 410


def test_watch_bookmarks(api: APIServer) -> None:
    async def go() -> list[dict[str, Any]]:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            rv = (await v1.list_pod_for_all_namespaces()).metadata.resource_version
            later(0.3, lambda: api.create(svc("bm")))  # a Service: moves the global rv, no Pod event
            w = watch.Watch()
            async with w:
                evs = await collect(w.stream(v1.list_pod_for_all_namespaces, resource_version=rv,
                                             allow_watch_bookmarks=True, timeout_seconds=1), 100)
            return evs

    evs = run(go)
    assert len(evs) >= 3 and all(e["type"] == "BOOKMARK" for e in evs)
    rvs = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in evs]
    assert rvs == sorted(rvs) and rvs[-1] == api.resource_version  # bookmarks advance past other kinds
    assert evs[0]["raw_object"]["kind"] == "Pod"


def test_send_initial_events_ends_with_annotated_bookmark(api: APIServer) -> None:
    with urllib.request.urlopen(f"{api.url}/api/v1/namespaces?watch=1&sendInitialEvents=true"
                                "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
                                "&timeoutSeconds=1") as r:
        lines = [json.loads(x) for x in r.read().splitlines()]
    assert [x["type"] for x in lines[:6]] == ["ADDED"] * 5 + ["BOOKMARK"]
    assert lines[5]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_timeout_closes_cleanly(api: APIServer) -> None:
    async def go() -> float:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.get(f"{api.url}/api/v1/pods?watch=1&resourceVersion={api.resource_version}"
                             "&timeoutSeconds=1") as r:
                assert await r.read() == b""  # complete chunked body, no error
            return time.monotonic() - t0

    assert 0.9 <= run(go) < 5
    deadline = time.monotonic() + 5
    while api.watch_count() and time.monotonic() < deadline:  # the handler's cleanup may trail the EOF
        time.sleep(0.01)
    assert api.watch_count() == 0


def test_watch_selector_transitions(api: APIServer) -> None:
    api.create(svc("sel"))

    def mutate() -> None:
        o = api.get("Service", "ns1", "sel")
        o["metadata"]["labels"]["tier"] = "web"  # enters the selection: ADDED
        o = api.update(o)
        o["spec"]["ports"][0]["port"] = 81  # stays: MODIFIED
        o = api.update(o)
        o["metadata"]["labels"]["tier"] = "db"  # leaves: DELETED
        api.update(o)

    async def go() -> list[dict[str, Any]]:
        async with k8s(api) as c:
            rv = str(api.resource_version)  # taken before the mutations start
            later(0.2, mutate)
            w = watch.Watch()
            async with w:
                return await collect(w.stream(client.CoreV1Api(c).list_namespaced_service, "ns1",
                                              label_selector="tier=web", resource_version=rv,
                                              timeout_seconds=5), 3)

    evs = run(go)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert evs[2]["object"].metadata.labels["tier"] == "db"


def test_drop_watches_ends_client_streams(api: APIServer) -> None:
    async def go(clean: bool) -> str:
        async with k8s(api) as c:
            w = watch.Watch()

            async def dropper() -> int:
                while api.watch_count() == 0:
                    await asyncio.sleep(0.02)
                return await asyncio.to_thread(api.drop_watches, clean)

            task = asyncio.create_task(dropper())
            try:
                async with w:
                    await collect(w.stream(client.CoreV1Api(c).list_service_for_all_namespaces,
                                           resource_version=str(api.resource_version), timeout_seconds=30), 1)
                outcome = "ended"
            except aiohttp.ClientPayloadError:
                outcome = "broken"
            assert await task == 1
            return outcome

    assert api.watch_count("Pod") == 0

    assert run(lambda: go(True)) == "ended"
    assert run(lambda: go(False)) == "broken"
    watches = [p for _, p in api.requests() if "watch=" in p]
    assert len(watches) == 2 and all(p.startswith("/api/v1/services?") for p in watches)


def test_unreachable_refuses_then_recovers(api: APIServer) -> None:
    port = api.port

    async def go() -> None:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            await v1.list_namespace()
            api.set_unreachable(True)
            with pytest.raises(aiohttp.ClientError):
                await v1.list_namespace()
            api.create(svc("while-down"))  # the cluster changes while the API is unreachable
            api.set_unreachable(False)
            names = [s.metadata.name for s in (await v1.list_namespaced_service("ns1")).items]
            assert "while-down" in names

    run(go)
    assert api.port == port


def test_unreachable_503(api: APIServer) -> None:
    async def go() -> None:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            api.set_unreachable(True, mode="503")
            with pytest.raises(ApiException) as ei:
                await v1.list_namespace()
            assert ei.value.status == 503
            api.set_unreachable(False)
            await v1.list_namespace()

    run(go)


def test_restart_keeps_port_and_state(api: APIServer) -> None:
    url = api.url
    api.create(svc("kept"))
    api.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/api", timeout=2)
    api.start()
    assert api.url == url
    assert http(api, "/api/v1/namespaces/ns1/services/kept")[0] == 200


def test_control_endpoints(api: APIServer) -> None:
    # 3 s down: the first poll must land inside the window even on a loaded machine
    assert http(api, "/_control/unreachable?seconds=3&mode=503", method="POST")[0] == 200
    codes = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and codes[-2:] != [503, 200]:
        code = http(api, "/api/v1/namespaces")[0]
        if not codes or codes[-1] != code:
            codes.append(code)
        time.sleep(0.02)
    assert codes[-2:] == [503, 200]  # down, then back by itself
    assert http(api, "/_control/drop-watches", method="POST") == (200, {"dropped": 0})


def test_hold_watches_keeps_streams_open_and_silent(api: APIServer) -> None:
    """A held stream sends nothing and outlives its timeoutSeconds (the client's own read timeout
    ends it); the events it swallowed stay in the history for the next watch."""
    rv = api.resource_version

    async def watch_lines(read_timeout: float) -> list[bytes]:
        url = f"{api.url}/api/v1/namespaces/ns1/services?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        timeout = aiohttp.ClientTimeout(sock_read=read_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            assert resp.status == 200
            return [line async for line in resp.content if line.strip()]

    async def go() -> None:
        assert await watch_lines(5) == []  # nothing happened: ended by the server after 1 s
        assert http(api, "/_control/hold-watches", method="POST") == (200, {"silenced": 0})
        api.create(svc("while-held"))
        with pytest.raises(asyncio.TimeoutError):
            await watch_lines(2.5)  # held past its 1 s, the ADDED event swallowed
        assert http(api, "/_control/hold-watches?on=0", method="POST") == (200, {"silenced": 0})
        lines = await watch_lines(5)
        assert [(json.loads(x)["type"], json.loads(x)["object"]["metadata"]["name"]) for x in lines] == [
            ("ADDED", "while-held")]

    run(go)


def test_stall_lists_until_released(api: APIServer) -> None:
    api.stall_lists()
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(api.url + "/api/v1/namespaces", timeout=1)  # no answer while stalled
    assert http(api, "/_control/stall-lists?on=0", method="POST") == (200, {"stalled": False})
    assert http(api, "/api/v1/namespaces")[0] == 200


# ---------------------------------------------------------------------------------------- selectors


def test_label_selector_syntax() -> None:
    lab = {"metadata": {"labels": {"app": "web", "tier": "fe", "n": "5"}}}
    cases = {
        "app=web": True, "app==web": True, "app!=web": False, "missing!=x": True,
        "app in (web,db)": True, "app notin (web)": False, "tier in (be)": False,
        "app": True, "!app": False, "!missing": True, "missing": False,
        "app=web,tier=fe": True, "app=web,tier in (be, x)": False, "n>4": True, "n<4": False, "": True,
    }
    for sel, want in cases.items():
        assert labels_match(parse_label_selector(sel), lab) is want, sel


def test_selectors_over_http(api: APIServer) -> None:
    async def go() -> None:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            pods = await v1.list_pod_for_all_namespaces(
                field_selector="status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown")
            names = {p.metadata.name for p in pods.items}
            assert "job-done-7k2mx" not in names and "job-failed-p9q4r" not in names and len(names) == 14
            one = await v1.list_service_for_all_namespaces(field_selector="metadata.name=svc1")
            assert sorted(s.metadata.namespace for s in one.items) == ["ns1", "ns2"]
            nsf = await v1.list_service_for_all_namespaces(field_selector="metadata.namespace=ns2")
            assert [s.metadata.name for s in nsf.items] == ["svc1"]
            prod = await v1.list_namespace(label_selector="env=prod")
            assert [n.metadata.name for n in prod.items] == ["prod"]
            notprod = await v1.list_namespace(label_selector="env!=prod")
            assert len(notprod.items) == 4
            inset = await v1.list_namespaced_service("ns1", label_selector="app in (svc1, hdls1)")
            assert sorted(s.metadata.name for s in inset.items) == ["hdls1", "svc1"]
            with pytest.raises(ApiException) as ei:
                await v1.list_service_for_all_namespaces(field_selector="spec.bogus=1")
            assert ei.value.status == 400 and "field label not supported" in ei.value.body

    run(go)


# ---------------------------------------------------------------------------------------- writes


def test_create_update_delete_semantics(api: APIServer) -> None:
    async def go() -> None:
        async with k8s(api) as c:
            v1 = client.CoreV1Api(c)
            body = {"metadata": {"name": "c1"}, "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}
            created = await v1.create_namespaced_service("ns2", body)
            assert created.kind == "Service" and created.metadata.namespace == "ns2"
            assert created.spec.cluster_ip.startswith("10.240.") and created.spec.cluster_ips == [
                created.spec.cluster_ip]
            assert created.spec.ip_families == ["IPv4"] and created.spec.ip_family_policy == "SingleStack"
            assert created.spec.ports[0].target_port == 53
            with pytest.raises(ApiException) as ei:
                await v1.create_namespaced_service("ns2", body)
            assert ei.value.status == 409 and json.loads(ei.value.body)["reason"] == "AlreadyExists"
            stale = created.to_dict()
            created.metadata.labels = {"a": "b"}
            updated = await v1.replace_namespaced_service("c1", "ns2", created)
            assert int(updated.metadata.resource_version) > int(stale["metadata"]["resource_version"])
            assert updated.spec.cluster_ip == created.spec.cluster_ip
            created.metadata.labels = {"a": "c"}  # still carries the old resourceVersion
            with pytest.raises(ApiException) as ei:
                await v1.replace_namespaced_service("c1", "ns2", created)
            assert ei.value.status == 409 and json.loads(ei.value.body)["reason"] == "Conflict"
            patched = await v1.patch_namespaced_service("c1", "ns2", {"metadata": {"labels": {"p": "q"}}})
            assert patched.metadata.labels == {"a": "b", "p": "q"}
            jp = await v1.patch_namespaced_service(
                "c1", "ns2", [{"op": "replace", "path": "/spec/ports/0/port", "value": 54}])
            assert jp.spec.ports[0].port == 54
            await v1.delete_namespaced_service("c1", "ns2")
            with pytest.raises(ApiException) as ei:
                await v1.delete_namespaced_service("c1", "ns2")
            st = json.loads(ei.value.body)
            assert ei.value.status == 404 and st["kind"] == "Status" and st["reason"] == "NotFound"
            assert st["message"] == 'services "c1" not found' and st["details"] == {"name": "c1", "kind": "services"}
            with pytest.raises(ApiException) as ei:
                await v1.create_namespaced_service("nope", body)
            assert ei.value.status == 404
            assert json.loads(ei.value.body)["message"] == 'namespaces "nope" not found'
            with pytest.raises(ApiException) as ei:
                await v1.create_namespaced_service("ns2", {"metadata": {"name": "dup"},
                                                           "spec": {"clusterIP": "10.240.16.10"}})
            assert ei.value.status == 422
            ds = await v1.create_namespaced_service("ns2", {"metadata": {"name": "ds"}, "spec": {
                "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"],
                "ports": [{"port": 80}]}})
            assert ds.spec.cluster_ips[1].startswith("fd00:10:240::")
            sl = await client.DiscoveryV1Api(c).create_namespaced_endpoint_slice("ns2", {
                "metadata": {"generateName": "ds-", "labels": {"kubernetes.io/service-name": "ds"}},
                "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.2.99"]}],
                "ports": [{"port": 80}]})
            assert sl.metadata.name.startswith("ds-") and len(sl.metadata.name) == 8
            assert sl.metadata.generation == 1 and sl.ports[0].protocol == "TCP"

    run(go)


def test_strategic_merge_patch_merges_ports_by_key() -> None:
    cur = {"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "dns", "port": 53}],
                    "selector": {"app": "a"}}}
    patch = {"metadata": {"labels": {"b": None, "c": "3"}, "$deleteFromPrimitiveList/finalizers": ["x"]},
             "spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [
                 {"port": 80, "targetPort": 9090}, {"port": 53, "$patch": "delete"}, {"port": 443, "name": "https"}],
                 "selector": {"$patch": "replace", "app": "b"}}}
    out = strategic_merge_patch(cur, patch)
    assert out["metadata"] == {"labels": {"a": "1", "c": "3"}, "finalizers": ["y"]}
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 9090},
                                    {"port": 443, "name": "https"}]
    assert out["spec"]["selector"] == {"app": "b"}
    assert cur["spec"]["ports"][0]["targetPort"] == 8080  # input untouched


def test_namespace_delete_takes_contents(api: APIServer) -> None:
    code, ns = http(api, "/api/v1/namespaces/ns2", method="DELETE")
    assert code == 200 and ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert api.objects("Service", "ns2") == [] and api.objects("Pod", "ns2") == []
    assert http(api, "/api/v1/namespaces/ns2")[0] == 404


def test_namespace_terminating_window() -> None:
    with APIServer(load_objects(FIXTURE_CLUSTER), namespace_delay=0.3) as srv:
        srv.delete("Namespace", None, "ns2")
        assert srv.get("Namespace", None, "ns2")["status"]["phase"] == "Terminating"
        code, st = http(srv, "/api/v1/namespaces/ns2/services", method="POST", body=svc("late", ns="ns2"))
        assert code == 403 and "being terminated" in st["message"]
        assert http(srv, "/api/v1/namespaces/ns2/services/svc1", method="DELETE")[0] == 200  # kubectl delete -f
        deadline = time.monotonic() + 10
        while srv.objects("Pod", "ns2") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.objects("Pod", "ns2") == []
        assert "ns2" not in {n["metadata"]["name"] for n in srv.objects("Namespace")}


def test_table_output_for_kubectl(api: APIServer) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    code, tbl = http(api, "/api/v1/namespaces/kube-system/services", headers={"Accept": accept})
    assert code == 200 and tbl["kind"] == "Table" and tbl["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in tbl["columnDefinitions"]][:5] == ["Name", "Type", "Cluster-IP", "External-IP",
                                                                 "Port(s)"]
    assert tbl["rows"][0]["cells"][:5] == ["kube-dns", "ClusterIP", "10.240.16.10", "<none>",
                                           "53/UDP,53/TCP,9153/TCP"]
    assert tbl["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_get_create_delete(api: APIServer, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(api.write_kubeconfig(tmp_path / "kc")), "HOME": str(tmp_path)}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        p = subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "10.240.16.10" in kubectl("get", "svc", "-n", "kube-system")
    manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: kc, namespace: ns1}\nspec: {ports: [{port: 80}]}\n"
    assert "service/kc created" in kubectl("create", "-f", "-", stdin=manifest)
    assert api.get("Service", "ns1", "kc")["spec"]["clusterIP"].startswith("10.240.")
    assert "kc" in kubectl("get", "svc", "-n", "ns1", "-o", "name")
    assert '"kc" deleted' in kubectl("delete", "svc", "-n", "ns1", "kc")
    assert "hdls1-h1abc" in kubectl("get", "endpointslices", "-n", "ns1")


# ---------------------------------------------------------------------------------------- loading, CLI


def test_load_formats(tmp_path: Path) -> None:
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "l1"}}]}
    typed = {"apiVersion": "v1", "kind": "ServiceList", "items": [
        {"metadata": {"name": "s", "namespace": "l2"}, "spec": {"ports": [{"port": 1}]}}]}
    (tmp_path / "a.json").write_text(json.dumps(lst))
    (tmp_path / "b.yaml").write_text("---\n" + json.dumps(typed) + "\n---\n")
    objs = load_objects(tmp_path)
    assert [o["kind"] for o in objs] == ["Namespace", "Service"]
    assert parse_text("") == []
    with APIServer() as srv:
        assert srv.load_file(tmp_path) == 2
        assert srv.get("Service", "l2", "s")["spec"]["clusterIP"]  # namespace l2 was created for it
        assert {n["metadata"]["name"] for n in srv.objects("Namespace")} == {"l1", "l2"}


def test_generate_cluster() -> None:
    objs = generate_cluster(300, 120)
    with APIServer(objs) as srv:
        assert len(srv.objects("Service")) == 300
        slices = srv.objects("EndpointSlice")
        assert len(slices) == 600 and max(len(s["endpoints"]) for s in slices) == 100
        headless = [s for s in srv.objects("Service") if s["spec"]["clusterIP"] == "None"]
        assert len(headless) == 30
        code, body = http(srv, "/apis/discovery.k8s.io/v1/endpointslices?limit=10")
        assert code == 200 and len(body["items"]) == 10


def test_cli_subprocess_writes_usable_kubeconfig(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycoredns_conformance.apiserver", "--listen", "127.0.0.1:0",
         "--objects", str(FIXTURE_CLUSTER), "--kubeconfig-out", str(kc)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("apiserver listening on http://127.0.0.1:")
        assert proc.stdout.readline().startswith("kubeconfig written to")

        async def go() -> list[str]:
            cfg = client.Configuration()
            await config.load_kube_config(config_file=str(kc), client_configuration=cfg)
            assert cfg.host == first.rsplit(" ", 1)[1]
            async with client.ApiClient(configuration=cfg) as c:
                svcs = await client.CoreV1Api(c).list_namespaced_service("kube-system")
                return [s.spec.cluster_ip for s in svcs.items]

        assert run(go) == ["10.240.16.10"]
        url = first.rsplit(" ", 1)[1]
        with urllib.request.urlopen(urllib.request.Request(url + "/_control/expire", method="POST")) as r:
            assert int(json.loads(r.read())["resourceVersion"]) > 1
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ---------------------------------------------------------------------------------------- trio


async def test_usable_from_trio() -> None:
    """In-process from a trio test: mutators are plain calls; the asyncio client runs in a thread."""
    with APIServer(load_objects(FIXTURE_CLUSTER)) as srv:

        async def names() -> list[str]:
            async with k8s(srv) as c:
                return [s.metadata.name for s in (await client.CoreV1Api(c).list_namespaced_service("ns2")).items]

        srv.create(svc("from-trio", ns="ns2"))
        got = await trio.to_thread.run_sync(lambda: asyncio.run(names()))
        assert got == ["from-trio", "svc1"]


def test_object_names_as_kube_apiserver_1_36() -> None:
    """Services and Namespaces are DNS-1123 labels (Services since RelaxedServiceNameValidation, on by
    default: `9lives` is accepted), Pods/Endpoints/EndpointSlices DNS-1123 subdomains; apimachinery's texts."""
    from pycoredns_conformance.apiserver import APIError, Store

    st = Store()
    st.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}})
    st.create(svc("9lives", clusterIP="10.240.16.99", ports=[{"port": 80}]))
    st.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web.v1", "namespace": "ns1"}})
    for kind, name, text in [
        ("Service", "9Lives", "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"),
        ("Service", "a.b", "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'"),
        ("Service", "x" * 64, "must be no more than 63 characters"),
        ("Namespace", "a.b", "a lowercase RFC 1123 label"),
        ("Pod", "Web", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
    ]:
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
        if kind != "Namespace":
            obj["metadata"]["namespace"] = "ns1"
        with pytest.raises(APIError) as ei:
            st.create(obj)
        assert ei.value.code == 422 and f'metadata.name: Invalid value: "{name}": ' in str(ei.value), str(ei.value)
        assert text in str(ei.value)
