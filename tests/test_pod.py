"""One pod, one view with `-workers N`: one /metrics scrape covers every worker, /health and /ready
answer for every worker, `-workers auto` follows the cgroup CPU quota (pycoredns.pod, pycoredns.workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
import trio
from conftest import free_port
from prometheus_client.parser import text_string_to_metric_families
from test_workers import ask, children, start, udp_sockets_on, wait_until

from pycoredns import metrics
from pycoredns.pod import Pod
from pycoredns.workers import auto_count, cpu_quota


def _families(text: str) -> dict[str, list]:
    """Samples by family name, parsed by Prometheus's own client (so the exposition is valid)."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _total(samples, suffix: str = "") -> float:
    return sum(s.value for s in samples if s.name.endswith(suffix))


def _pod_sockets(supervisor: int) -> list[str]:
    """The abstract names of a pod's internal sockets (`pycoredns-<pid>-<token>-<index>`), by index."""
    with open("/proc/net/unix") as f:
        names = {line.split()[-1][1:] for line in f if f"@pycoredns-{supervisor}-" in line}
    return sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))


def _internal_snapshot(name: str, addr: str) -> dict:
    """One worker's own registry, through the pod's internal socket (what a sibling asks for)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(b"\0" + name.encode())
        s.sendall(json.dumps({"addr": addr, "path": "/metrics", "method": "GET", "target": "/metrics"}).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)["snapshot"]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_one_scrape_counts_every_worker(tmp_path, server_process):
    port, health, ready, prom = free_port(), free_port(), free_port(), free_port()
    corefile = (f".:{port} {{\n bind 127.0.0.1\n health 127.0.0.1:{health}\n ready 127.0.0.1:{ready}\n"
                f" prometheus 127.0.0.1:{prom}\n cache 30\n whoami\n}}\n")
    srv = start(server_process, tmp_path, corefile, "-workers", "2")
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: len(children(srv.proc.pid)) == 2 and udp_sockets_on(port) == 2)
    assert wait_until(lambda: _get(ready, "/ready")[0] == 200)
    queries = 60
    for i in range(queries):  # a fresh source port each: both workers get some
        assert ask(port, f"n{i}.example.org").rcode() == 0
    assert wait_until(lambda: len(_pod_sockets(srv.proc.pid)) == 2)
    own = [_internal_snapshot(name, f"127.0.0.1:{prom}") for name in _pod_sockets(srv.proc.pid)]
    per_worker = [sum(v for _, v in snap["coredns_dns_requests_total"]["samples"]) for snap in own]
    assert sum(per_worker) == queries and all(per_worker), per_worker  # both served, neither saw all
    for _ in range(6):  # new connections: the kernel spreads them over both workers' sockets
        status, text = _get(prom, "/metrics")
        assert status == 200
        fam = _families(text)
        assert _total(fam["coredns_dns_requests"]) == queries
        assert _total(fam["coredns_dns_responses"]) == queries
        assert _total(fam["coredns_dns_request_duration_seconds"], "_count") == queries
        assert _total(fam["coredns_cache_requests"]) == queries
        entries = {s.labels["type"]: s.value for s in fam["coredns_cache_entries"]}
        assert entries["success"] == queries  # each worker caches what it answered: the pod's total
        assert [s.value for s in fam["coredns_build_info"]] == [1]  # one series, not one per worker
        assert _total(fam["process_resident_memory_bytes"]) > max(
            own[i]["process_resident_memory_bytes"]["samples"][0][1] for i in range(2))
        assert _get(health, "/health") == (200, "OK")
        assert _get(ready, "/ready")[0] == 200


@pytest.fixture
def supervisor_id() -> str:
    """A pod id no real supervisor uses."""
    return f"test-{os.getpid()}-{os.urandom(4).hex()}"


def _registry(requests: float, gauge: float) -> metrics.Registry:
    r = metrics.Registry()
    r.counter("t_requests_total", "requests", ("zone",)).inc(".", amount=requests)
    h = r.histogram("t_duration_seconds", "duration", [0.1, 1], ("zone",))
    h.observe(0.05, ".")
    h.observe(0.5, ".")
    r.gauge("coredns_cache_entries", "entries", ("type",)).set("success", value=gauge)
    r.gauge("coredns_build_info", "build", ("version",)).set("1", value=1)
    r.gauge("t_custom", "custom gauge, no mode").set(value=gauge)
    return r


async def test_pod_merges_counters_histograms_and_gauges(supervisor_id) -> None:
    pods = [Pod(supervisor_id, i, 2, _registry(3 + i, 10 * (i + 1))) for i in range(2)]
    async with trio.open_nursery() as n:
        for p in pods:
            await n.start(p.serve)
        status, ctype, body = await pods[0].route("x:1", "/metrics", lambda m, t: (500, "", b""))("GET", "/metrics")
        n.cancel_scope.cancel()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    fam = _families(body.decode())
    assert [(s.labels, s.value) for s in fam["t_requests"]] == [({"zone": "."}, 7.0)]
    buckets = {s.labels["le"]: s.value for s in fam["t_duration_seconds"] if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 2, "1": 4, "+Inf": 4}  # le as client_golang writes it
    assert [s.value for s in fam["coredns_cache_entries"]] == [30.0]  # sum
    assert [s.value for s in fam["coredns_build_info"]] == [1.0]  # max
    assert sorted((s.labels["worker"], s.value) for s in fam["t_custom"]) == [("0", 10.0), ("1", 20.0)]


async def test_probes_answer_for_every_worker(supervisor_id) -> None:
    states = [(200, b"OK"), (200, b"OK")]
    pods = [Pod(supervisor_id, i, 2, metrics.Registry()) for i in range(2)]
    routes = [p.route("x:1", "/ready", lambda m, t, i=i: (states[i][0], "text/plain", states[i][1]))
              for i, p in enumerate(pods)]
    async with trio.open_nursery() as n:
        await n.start(pods[0].serve)
        # worker 1 not listening (starting, stopped): the pod is not ready, whichever worker is asked
        assert await routes[0]("GET", "/ready") == (503, "text/plain; charset=utf-8", b"worker 1 did not answer\n")
        await n.start(pods[1].serve)
        assert await routes[0]("GET", "/ready") == (200, "text/plain", b"OK")
        states[1] = (503, b"kubernetes")
        for route in routes:
            assert await route("GET", "/ready") == (503, "text/plain", b"kubernetes")
        n.cancel_scope.cancel()


@pytest.mark.parametrize(("files", "quota"), [
    ({"proc/self/cgroup": "0::/kubepods/pod1/c1\n", "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "200000 100000\n"}, 2.0),
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
    ({"proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, None),  # namespaced: the top
    ({"proc/self/cgroup": "3:cpu,cpuacct:/kubepods/p\n",
      "sys/fs/cgroup/cpu,cpuacct/kubepods/p/cpu.cfs_quota_us": "300000",
      "sys/fs/cgroup/cpu,cpuacct/kubepods/p/cpu.cfs_period_us": "100000"}, 3.0),
    ({"proc/self/cgroup": "1:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"}, None),
    ({}, None),
])
def test_cpu_quota_from_cgroup_v1_and_v2(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(str(tmp_path)) == quota
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if quota is None else max(1, min(cpus, int(quota)))  # rounded down, as automaxprocs
    assert auto_count(str(tmp_path)) == expected


def test_workers_auto_serves_and_bad_values_are_refused(tmp_path, server_process):
    port = free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n", "-workers", "auto")
    srv.wait_for_line("CoreDNS-")
    assert ask(port).rcode() == 0
    assert wait_until(lambda: udp_sockets_on(port) == auto_count())
    bad = start(server_process, tmp_path, ". {\n whoami\n}\n", "-workers", "many")
    assert bad.proc.wait(15) == 2
    assert bad.proc.stderr is not None and b"-workers must be auto or at least 1" in bad.proc.stderr.read()


async def test_a_worker_that_exits_hands_its_counts_to_the_pod(supervisor_id) -> None:
    """Counters and histograms of a gracefully stopped worker stay in the totals (no counter reset);
    its gauges leave with it."""
    first = Pod(supervisor_id, 0, 2, _registry(5, 10))
    async with trio.open_nursery() as n:
        await n.start(first.serve)
        leaving = Pod(supervisor_id, 1, 2, _registry(3, 20))
        assert await trio.to_thread.run_sync(leaving.hand_over)
        replacement = Pod(supervisor_id, 1, 2, _registry(2, 30))  # the same index, counting from zero
        async with trio.open_nursery() as inner:
            await inner.start(replacement.serve)
            route = replacement.route("x:1", "/metrics", lambda m, t: (500, "", b""))
            fam = _families((await route("GET", "/metrics"))[2].decode())
            inner.cancel_scope.cancel()  # the replacement stops serving, then exits
        assert await trio.to_thread.run_sync(replacement.hand_over)
        again = _families((await first.route("x:1", "/metrics", lambda m, t: (500, "", b""))("GET", "/metrics"))[2]
                          .decode())
        n.cancel_scope.cancel()
    assert [s.value for s in fam["t_requests"]] == [10.0]  # 5 + 3 (handed over) + 2
    assert {s.labels["le"]: s.value for s in fam["t_duration_seconds"] if s.name.endswith("_bucket")}["+Inf"] == 6
    assert [s.value for s in fam["coredns_cache_entries"]] == [40.0]  # live workers' gauges only: 10 + 30
    assert [s.value for s in again["t_requests"]] == [10.0]  # still 10 with worker 1 gone (5 + 3 + 2 held)
    lonely = Pod(supervisor_id, 1, 2, _registry(1, 1))
    assert not await trio.to_thread.run_sync(lonely.hand_over)  # nobody left to take them: dropped


def test_replaced_worker_keeps_the_pods_totals(tmp_path, server_process):
    """A worker stopped from outside is replaced (pycoredns.workers); the pod's counters do not drop."""
    port, prom = free_port(), free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n prometheus 127.0.0.1:{prom}\n whoami\n}}\n",
                "-workers", "2")
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: len(children(srv.proc.pid)) == 2 and udp_sockets_on(port) == 2)
    queries = 40
    for i in range(queries):
        assert ask(port, f"n{i}.example.org").rcode() == 0
    before = children(srv.proc.pid)
    os.kill(before[0], signal.SIGTERM)
    assert wait_until(lambda: before[0] not in children(srv.proc.pid) and len(children(srv.proc.pid)) == 2
                      and udp_sockets_on(port) == 2)
    for _ in range(4):
        status, text = _get(prom, "/metrics")
        assert status == 200 and _total(_families(text)["coredns_dns_requests"]) == queries


async def test_a_sibling_answering_garbage_counts_as_not_answering(supervisor_id) -> None:
    pod = Pod(supervisor_id, 0, 2, _registry(5, 10))
    ok = pod.route("x:1", "/health", lambda m, t: (200, "text/plain", b"OK"))
    scrape = pod.route("x:1", "/metrics", lambda m, t: (500, "", b""))

    async def garbage(task_status=trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with listener:
            await listener.bind(pod.address(1))
            listener.listen(8)
            task_status.started()
            for reply in (b"[1, 2]", b'{"status": "x"}', b"not json", b'{"snapshot": 3}'):
                conn, _ = await listener.accept()
                with conn:
                    await conn.recv(65536)
                    await conn.send(reply)

    async with trio.open_nursery() as n:
        await n.start(pod.serve)
        await n.start(garbage)
        for _ in range(3):
            assert await ok("GET", "/health") == (503, "text/plain; charset=utf-8", b"worker 1 did not answer\n")
        status, _, body = await scrape("GET", "/metrics")
        n.cancel_scope.cancel()
    assert status == 200 and [s.value for s in _families(body.decode())["t_requests"]] == [5.0]  # worker 1 left out
