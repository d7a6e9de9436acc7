"""kubernetes plugin, live: watch updates, dropped watches, 410 relists, API outages, the trio bridge,
kubeadm's Corefile. Each test gets its own API test server (they mutate the cluster)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio
from conftest import free_port, query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from plugins.kubernetes import objects
from plugins.kubernetes.watch import Connection, Watcher

OK, NX = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
SVC1 = "svc1.ns1.svc.cluster.local."


@pytest.fixture
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


def corefile(kc: Path, options: str = "", extra: str = "") -> str:
    return (f".:0 {{\n kubernetes cluster.local in-addr.arpa ip6.arpa {{\n  kubeconfig {kc}\n  startup_timeout 30s\n"
            f"  {options}\n }}\n"
            f" {extra}\n}}\n")


def addrs(m: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in m.answer for rd in rrset}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> None:
    """Poll `check` every 50 ms until it is true; fail after `timeout` (bounded in count and time)."""
    with trio.move_on_after(timeout):
        for _ in range(int(timeout / 0.05) + 1):
            if await check():
                return
            await trio.sleep(0.05)
    assert await check(), "condition not reached in time"


def service(name: str, ns: str = "ns1", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}


def endpoint_slice(name: str, svc: str, ips: list[str], ns: str = "ns1", ready: bool = True) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


async def test_live_changes(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        serial0 = (await query(p, "cluster.local.", "SOA")).answer[0][0].serial

        # a new headless service with its slice
        api.create(service("live", clusterIP="None", selector={"app": "live"}))
        api.create(endpoint_slice("live-a", "live", ["10.9.0.1", "10.9.0.2"]))

        async def live_has_two() -> bool:
            return addrs(await query(p, "live.ns1.svc.cluster.local.", "A")) == {"10.9.0.1", "10.9.0.2"}

        await eventually(live_has_two)
        m = await query(p, "2.0.9.10.in-addr.arpa.", "PTR")
        assert addrs(m) == {"10-9-0-2.live.ns1.svc.cluster.local."}

        # flip readiness of one endpoint
        sl = api.get("EndpointSlice", "ns1", "live-a")
        sl["endpoints"][1]["conditions"]["ready"] = False
        api.update(sl)

        async def only_first() -> bool:
            return addrs(await query(p, "live.ns1.svc.cluster.local.", "A")) == {"10.9.0.1"}

        await eventually(only_first)
        assert (await query(p, "2.0.9.10.in-addr.arpa.", "PTR")).rcode() == NX

        # delete the slice: headless without endpoints is NXDOMAIN
        api.delete("EndpointSlice", "ns1", "live-a")

        async def gone() -> bool:
            return (await query(p, "live.ns1.svc.cluster.local.", "A")).rcode() == NX

        await eventually(gone)

        # ExternalName retarget, then type change to ClusterIP
        ext = api.get("Service", "ns1", "ext")
        ext["spec"]["externalName"] = "other.example."
        api.update(ext)

        async def retargeted() -> bool:
            return addrs(await query(p, "ext.ns1.svc.cluster.local.", "CNAME")) == {"other.example."}

        await eventually(retargeted)
        # deleting a service removes its names
        api.delete("Service", "ns1", "svc1")

        async def svc1_gone() -> bool:
            return (await query(p, SVC1, "A")).rcode() == NX

        await eventually(svc1_gone)
        serial1 = (await query(p, "cluster.local.", "SOA")).answer[0][0].serial
        assert serial1 >= serial0

        from plugins.kubernetes import programming_duration

        assert programming_duration.count("headless_with_selector") >= 1


async def test_ignore_empty_service(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.create(service("empty", clusterIP="10.240.17.20"))
    async with running(corefile(kc, "ignore empty_service")) as srv:
        p = srv.port()
        m = await query(p, "empty.ns1.svc.cluster.local.", "A")
        assert m.rcode() == NX and m.authority
        assert addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}
        api.create(endpoint_slice("empty-a", "empty", ["10.9.1.1"]))

        async def filled() -> bool:
            return addrs(await query(p, "empty.ns1.svc.cluster.local.", "A")) == {"10.240.17.20"}

        await eventually(filled)
    async with running(corefile(kc)) as srv:
        api.delete("EndpointSlice", "ns1", "empty-a")

        async def still_there() -> bool:
            m = await query(srv.port(), "empty.ns1.svc.cluster.local.", "A")
            ep = await query(srv.port(), "10-9-1-1.empty.ns1.svc.cluster.local.", "A")
            return addrs(m) == {"10.240.17.20"} and ep.rcode() == NX

        await eventually(still_there)


async def test_externalname_chains_are_bounded(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.create(service("loop-a", type="ExternalName", externalName="loop-b.ns1.svc.cluster.local"))
    api.create(service("loop-b", type="ExternalName", externalName="loop-a.ns1.svc.cluster.local"))
    api.create(service("self", type="ExternalName", externalName="self.ns1.svc.cluster.local"))
    api.create(service("ip-literal", type="ExternalName", externalName="10.1.2.3"))
    async with running(corefile(kc)) as srv:
        p = srv.port()
        # in-zone targets that never reach an address: NODATA without the CNAME (CoreDNS quirk 4)
        for name in ("loop-a", "self"):
            m = await query(p, f"{name}.ns1.svc.cluster.local.", "A", tcp=True)
            assert m.rcode() == OK and not m.answer and m.authority[0].rdtype == dns.rdatatype.SOA
        m = await query(p, "ext-internal.ns1.svc.cluster.local.", "AAAA")  # svc1 has no IPv6
        assert m.rcode() == OK and not m.answer and m.authority
        m = await query(p, "ip-literal.ns1.svc.cluster.local.", "A")
        assert m.rcode() == NX


async def test_watch_drop_and_410(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        await eventually(lambda: _true(api.watch_count() >= 3))
        # abort every watch, change things while the client reconnects: nothing may be lost
        api.drop_watches()
        api.create(service("after-drop", clusterIP="10.240.17.1"))

        async def visible(name: str, ip: str) -> bool:
            return addrs(await query(p, f"{name}.ns1.svc.cluster.local.", "A")) == {ip}

        await eventually(lambda: visible("after-drop", "10.240.17.1"))
        # clean end of stream (server-side timeout) resumes too
        api.drop_watches(clean=True)
        api.create(service("after-close", clusterIP="10.240.17.2"))
        await eventually(lambda: visible("after-close", "10.240.17.2"))
        # compact history and break the watches: the resume gets 410 and must relist
        await eventually(lambda: _true(api.watch_count() >= 3))
        api.set_unreachable(True)
        api.create(service("during-410", clusterIP="10.240.17.3"))
        api.delete("Service", "ns1", "multiport")
        api.expire_resource_versions()
        api.set_unreachable(False)
        await eventually(lambda: visible("during-410", "10.240.17.3"), timeout=12)

        async def multiport_gone() -> bool:
            return (await query(p, "multiport.ns1.svc.cluster.local.", "A")).rcode() == NX

        await eventually(multiport_gone)
        assert await visible("after-drop", "10.240.17.1")


async def http_get(url: str) -> tuple[int, bytes]:
    """GET in a worker thread (urllib), bounded by a timeout."""
    import urllib.error
    import urllib.request

    def get() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    return await trio.to_thread.run_sync(get)


async def _true(v: bool) -> bool:
    return v


async def test_api_down_at_startup(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.set_unreachable(True)
    ready_url = f"http://127.0.0.1:{free_port()}/ready"
    cf = corefile(kc, "startup_timeout 300ms\n  fallthrough in-addr.arpa",
                  extra=f"whoami\n ready {ready_url.split('/')[2]}")
    async with running(cf) as srv:
        p = srv.port()
        assert await http_get(ready_url) == (503, b"kubernetes")
        m = await query(p, "nope.ns1.svc.cluster.local.", "A")
        assert m.rcode() == dns.rcode.SERVFAIL and m.flags & dns.flags.AA
        assert len(m.authority) == 1 and m.authority[0].name.to_text() == "cluster.local."
        m = await query(p, "9.9.9.9.in-addr.arpa.", "PTR")  # fallthrough wins over the unsynced SERVFAIL
        assert m.rcode() == OK and m.additional
        m = await query(p, "cluster.local.", "SOA")  # positive answers are still served
        assert m.rcode() == OK
        api.set_unreachable(False)

        async def recovered() -> bool:
            return addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}

        await eventually(recovered, timeout=12)

        async def ready() -> bool:  # every kind has listed (services may come before slices)
            return await http_get(ready_url) == (200, b"OK")

        await eventually(ready, timeout=12)
        assert (await query(p, "nope.ns1.svc.cluster.local.", "A")).rcode() == NX


async def test_api_down_later(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        p = srv.port()
        api.set_unreachable(True, mode="503")
        await trio.sleep(0.3)
        for _ in range(3):
            assert addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}
            assert (await query(p, "nope.ns1.svc.cluster.local.", "A")).rcode() == NX
        assert srv.instance.ready() == []
        api.set_unreachable(False)
        api.create(service("back", clusterIP="10.240.17.9"))

        async def back() -> bool:
            return addrs(await query(p, "back.ns1.svc.cluster.local.", "A")) == {"10.240.17.9"}

        await eventually(back, timeout=12)


async def test_kubeadm_corefile(api, tmp_path: Path) -> None:
    """Reference §5.1 with a kubeconfig line; fixed ports replaced by ephemeral ones, forward to a dead port."""
    from pycoredns import directives

    kc = api.write_kubeconfig(tmp_path / "kc")
    dead = free_port()
    lines = {
        "errors": "errors",
        "health": f"health 127.0.0.1:{free_port()} {{\n lameduck 100ms\n }}",  # kubeadm says 5s: only shutdown time
        "ready": f"ready 127.0.0.1:{free_port()}",
        "kubernetes": (f"kubernetes cluster.local in-addr.arpa ip6.arpa {{\n pods insecure\n"
                       f" fallthrough in-addr.arpa ip6.arpa\n ttl 30\n kubeconfig {kc}\n"
                       f" startup_timeout 30s\n }}"),  # + kubeconfig; a long timeout only for loaded CI
        "prometheus": f"prometheus 127.0.0.1:{free_port()}",
        "forward": f"forward . 127.0.0.1:{dead} {{\n max_concurrent 1000\n }}",
        "cache": "cache 30 {\n disable success cluster.local\n disable denial cluster.local\n }",
        "loop": "loop",
        "reload": "reload",
        "loadbalance": "loadbalance",
    }
    have = set(directives.available())
    # plugins other engineers have not committed yet are left out (the kubernetes lines are always in)
    body = "\n ".join(v for k, v in lines.items() if k in have)
    async with running(f".:0 {{\n {body}\n}}\n") as srv:
        p = srv.port()
        m = await query(p, SVC1, "A")
        assert addrs(m) == {"10.240.16.101"} and m.answer[0].ttl == 30
        m = await query(p, "_http._tcp.hdls1.ns1.svc.cluster.local.", "SRV", tcp=True)
        assert len(m.answer[0]) == 2
        m = await query(p, "10-244-1-10.ns1.pod.cluster.local.", "A")
        assert addrs(m) == {"10.244.1.10"}
        m = await query(p, "nope.ns1.svc.cluster.local.", "A")
        assert m.rcode() == NX and m.authority
        m = await query(p, "dns-version.cluster.local.", "TXT")
        assert m.answer and m.answer[0].ttl in (30, 28800)
        m = await query(p, "101.16.240.10.in-addr.arpa.", "PTR")
        assert addrs(m) == {"svc1.ns1.svc.cluster.local."}


async def test_reload_replaces_the_watcher(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc)) as srv:
        assert await srv.restart() is None
        m = await query(srv.port(), SVC1, "A")
        assert addrs(m) == {"10.240.16.101"}

        async def one_watch_thread() -> bool:
            return sum(t.name == "kubernetes-watch" for t in threading.enumerate()) == 1

        await eventually(one_watch_thread, timeout=5)
        api.create(service("after-reload", clusterIP="10.240.17.5"))

        async def visible() -> bool:
            return addrs(await query(srv.port(), "after-reload.ns1.svc.cluster.local.", "A")) == {"10.240.17.5"}

        await eventually(visible)

    async def no_watch_thread() -> bool:
        return not any(t.name == "kubernetes-watch" for t in threading.enumerate())

    await eventually(no_watch_thread, timeout=5)


async def test_log_lines_when_api_is_down(api, tmp_path: Path, server_process) -> None:
    """The CLI program logs CoreDNS's startup lines and still starts serving."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.set_unreachable(True)
    port = free_port()
    conf = tmp_path / "Corefile"
    conf.write_text(f".:{port} {{\n bind 127.0.0.1\n kubernetes cluster.local {{\n  kubeconfig {kc}\n"
                    f"  startup_timeout 1200ms\n }}\n}}\n")
    proc = server_process(["-conf", str(conf)])
    line = await trio.to_thread.run_sync(proc.wait_for_line, "waiting for Kubernetes API", 10.0)
    assert line == "[INFO] plugin/kubernetes: waiting for Kubernetes API before starting server"
    line = await trio.to_thread.run_sync(proc.wait_for_line, "unsynced", 10.0)
    assert line == "[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API"
    waiting = [x for x in proc.lines if "waiting for Kubernetes API" in x]
    assert 2 <= len(waiting) <= 3  # every 500 ms during 1.2 s
    await trio.to_thread.run_sync(proc.wait_for_line, f":{port}", 10.0)  # the banner: listeners are open
    m = await query(port, "nope.ns1.svc.cluster.local.", "A")
    assert m.rcode() == dns.rcode.SERVFAIL


async def test_bridge_delivers_in_order_on_trio() -> None:
    """Events posted from another thread arrive in order, in batches, on the trio thread."""
    got: list[tuple] = []
    threads: set[int] = set()

    def deliver(batch: list[tuple]) -> None:
        threads.add(threading.get_ident())
        got.extend(batch)

    w = Watcher(Connection(), [], deliver)
    w._token = trio.lowlevel.current_trio_token()  # the part of start() that matters here

    def producer() -> None:
        for i in range(2000):
            w.post(("upsert", "pods", ("ns", str(i)), None))

    await trio.to_thread.run_sync(producer)
    with trio.move_on_after(2):
        while len(got) < 2000:
            await trio.sleep(0.01)
    assert [ev[2][1] for ev in got] == [str(i) for i in range(2000)]
    assert threads == {threading.get_ident()}


@pytest.mark.parametrize("obj", [
    None, 5, "x", {}, {"metadata": None}, {"metadata": {"name": 3}}, {"metadata": {"name": "a"}, "spec": 7},
    {"metadata": {"name": "a", "namespace": "b"}, "spec": {"clusterIPs": "nope", "ports": [1, {"port": "x"}]}},
    {"metadata": {"name": "a", "labels": {"kubernetes.io/service-name": "s"}},
     "endpoints": [5, {"addresses": ["bad", "10.0.0.1"], "conditions": None, "targetRef": "x"}], "ports": "p"},
    {"metadata": {"name": "a"}, "status": {"podIP": "garbage"}},
])
def test_reduce_odd_objects(obj) -> None:
    """Odd API objects reduce to None or to something sane, never an exception."""
    for fn in (objects.reduce_service, objects.reduce_slice, objects.reduce_pod, objects.reduce_namespace):
        fn(obj)
    sl = objects.reduce_slice({"metadata": {"name": "a", "labels": {"kubernetes.io/service-name": "s"}},
                               "endpoints": [{"addresses": ["bad", "10.0.0.1"], "conditions": None}]})
    assert sl is not None and [a.ip for a in sl.addrs] == ["10.0.0.1"] and sl.ports == objects.NO_PORTS


class GarbageAPI:
    """A broken API server: odd objects in lists, garbage and HTTP errors in watches (aiohttp thread)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.watches = 0
        self._ready = threading.Event()
        self._loop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        from aiohttp import web

        odd = [None, 5, {"metadata": {"name": "x", "namespace": "ns1"}, "spec": "nope"},
               {"metadata": {"name": "good", "namespace": "ns1"}, "spec": {"clusterIP": "10.0.0.7", "ports": "x"}},
               {"metadata": {"name": "bad-ip", "namespace": "ns1"}, "spec": {"clusterIPs": ["300.1.1.1"]}},
               {"metadata": {"name": "y" * 80, "namespace": "ns1"}, "spec": {"clusterIP": "10.0.0.8"}}]

        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.path
            if request.query.get("watch") in ("true", "1", "True"):
                self.watches += 1
                if self.watches % 3 == 0:
                    return web.Response(status=500, text="boom")
                resp = web.StreamResponse()
                await resp.prepare(request)
                await resp.write(b'{"type":"ADDED","object":7}\n' if self.watches % 3 == 1 else b"not json\n")
                await resp.write_eof()
                return resp
            if path.endswith("/namespaces"):
                items = [{"metadata": {"name": "ns1"}}, {"metadata": {}}, "junk"]
            elif path.endswith("/services"):
                items = odd
            else:
                items = [{"metadata": {"name": "s", "namespace": "ns1", "labels": "x"}}, []]
            return web.json_response({"metadata": {"resourceVersion": "5"}, "items": items})

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except RuntimeError:
            pass

    def __enter__(self) -> GarbageAPI:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def test_garbage_from_the_api_is_survived() -> None:
    with GarbageAPI() as bad:
        cf = f".:0 {{\n kubernetes cluster.local {{\n  endpoint http://127.0.0.1:{bad.port}\n }}\n}}\n"
        async with running(cf) as srv:
            p = srv.port()
            m = await query(p, "good.ns1.svc.cluster.local.", "A")
            assert addrs(m) == {"10.0.0.7"}
            m = await query(p, "bad-ip.ns1.svc.cluster.local.", "A")
            assert m.rcode() == OK and not m.answer  # exists, no usable address
            m = await query(p, "x.ns1.svc.cluster.local.", "A")
            assert m.rcode() == NX
            await eventually(lambda: _true(bad.watches >= 4), timeout=5)  # it keeps retrying
            m = await query(p, "good.ns1.svc.cluster.local.", "A")
            assert addrs(m) == {"10.0.0.7"}  # and keeps serving the last good state


async def test_autopath_with_pods_verified(api, tmp_path: Path) -> None:
    """The autopath plugin takes its per-client search list from kubernetes (client 127.0.0.1 is a pod)."""
    from pycoredns import directives

    if "autopath" not in directives.available():
        pytest.skip("autopath plugin not available")
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "ns1"},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
                "status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}})
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc, "pods verified", extra="autopath @kubernetes")) as srv:
        m = await query(srv.port(), "svc1.ns2.ns1.svc.cluster.local.", "A")
        assert m.rcode() == OK
        got = {(r.name.to_text(), rd.to_text()) for r in m.answer for rd in r}
        assert got == {("svc1.ns2.ns1.svc.cluster.local.", "svc1.ns2.svc.cluster.local."),
                       ("svc1.ns2.svc.cluster.local.", "10.240.16.201")}


async def test_namespace_labels_follow_label_changes(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    async with running(corefile(kc, "namespace_labels env=prod")) as srv:
        p = srv.port()
        assert addrs(await query(p, "api.prod.svc.cluster.local.", "A")) == {"10.240.16.150"}
        assert (await query(p, SVC1, "A")).rcode() == NX
        ns1 = api.get("Namespace", None, "ns1")
        ns1["metadata"]["labels"] = {"env": "prod"}
        api.update(ns1)

        async def ns1_in() -> bool:
            return addrs(await query(p, SVC1, "A")) == {"10.240.16.101"}

        await eventually(ns1_in)
        prod = api.get("Namespace", None, "prod")
        prod["metadata"]["labels"] = {"env": "staging"}
        api.update(prod)

        async def prod_out() -> bool:
            return (await query(p, "api.prod.svc.cluster.local.", "A")).rcode() == NX

        await eventually(prod_out)
