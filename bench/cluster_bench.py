"""The cluster DNS role at scale, side by side with another server binary (not a test; nothing asserted).

    python bench/cluster_bench.py [--services 5000] [--endpoints-per-service 10] [--seconds 10]
                                  [--other /work/ref/bin/coredns] [--rows a,srv-headless,...]
                                  [--ready-runs N]

The Kubernetes API test server (its own process, on the load core) generates N services x M endpoints
(every 10th service headless). Each server gets the issue-12 Corefile

    kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa;
                                                    ttl 30; kubeconfig ... }  + errors, ready, loadbalance

and is pinned to core 0 (started one after the other, so their syncs do not compete); dnsperf -c 16
runs on core 1. Reported per row and server: qps, server CPU µs per answer, and the ratio; then the
time from process start to /ready 200 and the RSS after sync. `--ready-runs N` measures only the
start: N starts of each server against the same API server, alternating which goes first, each
stopped once /ready says 200; reported per start: the time to /ready 200 and the server's CPU by then.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, write_queries  # noqa: E402
from bench.sidebyside import LOAD_CORE, Server, load_average, pinned, run_row  # noqa: E402

COREFILE = """.:{port} {{
    bind 127.0.0.1
    errors
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
        kubeconfig {kubeconfig}
    }}
    loadbalance
}}
"""
SERVICE_BASE = int(ipaddress.IPv4Address("10.241.0.0"))  # the generator's default ClusterIP range
NAMESPACES = 10


def service(i: int) -> str:
    return f"svc-{i}.bench-{i % NAMESPACES}.svc.cluster.local"


def rows(n: int, rnd: random.Random) -> dict[str, tuple[list[str], bool]]:
    """Row name -> (dnsperf lines, EDNS?). Every 10th service (i % 10 == 9) is headless."""
    cluster_ip = [i for i in range(n) if i % 10 != 9]
    headless = [i for i in range(n) if i % 10 == 9]
    pick = rnd.choice
    ptr = []
    for _ in range(20000):
        i = pick(cluster_ip)
        ip = SERVICE_BASE + 1 + i if rnd.random() >= 0.1 else SERVICE_BASE + 1 + n + 1000 + i  # 10 % absent
        ptr.append(f"{ipaddress.IPv4Address(ip).reverse_pointer} PTR")
    hosts = [f"host{k}.example{k % 50}.com" for k in range(500)]  # 500 external names x 12 suffixes
    misses = []
    for _ in range(20000):
        h = pick(hosts)
        suffix = rnd.choice([f"bench-{rnd.randrange(NAMESPACES)}.svc.cluster.local", "svc.cluster.local",
                             "cluster.local"])
        misses.append(f"{h}.{suffix} A")
    mix = [f"{service(rnd.randrange(n))} A" for _ in range(20000)]
    mix += [f"_http._tcp.{service(rnd.randrange(n))} SRV" for _ in range(5000)]
    rnd.shuffle(mix)
    return {
        "A ClusterIP": ([f"{service(pick(cluster_ip))} A" for _ in range(20000)], False),
        "A headless": ([f"{service(pick(headless))} A" for _ in range(20000)], False),
        "PTR (10 % absent)": (ptr, False),
        "AAAA NODATA": ([f"{service(pick(cluster_ip))} AAAA" for _ in range(20000)], False),
        "search-path misses": (misses, False),
        "SRV ClusterIP": ([f"_http._tcp.{service(pick(cluster_ip))} SRV" for _ in range(20000)], False),
        "SRV headless (TC)": ([f"_http._tcp.{service(pick(headless))} SRV" for _ in range(20000)], False),
        "SRV headless EDNS": ([f"_http._tcp.{service(pick(headless))} SRV" for _ in range(20000)], True),
        "mix 20k A + 5k SRV": (mix, False),
    }


def settled_rss(s: Server, limit: float = 120.0) -> tuple[float, float]:
    """(seconds, MB): the RSS once it has stopped growing (two reads 1 s apart within 1 MB).

    pycoredns is ready once every kind has listed and builds its answers afterwards (a query first
    builds what it needs); this RSS is the one of the whole index. CoreDNS's is stable at once.
    """
    started = time.monotonic()
    last = s.rss_mb()
    while time.monotonic() - started < limit:
        time.sleep(1)
        now = s.rss_mb()
        if abs(now - last) < 1.0:
            return time.monotonic() - started, now
        last = now
    return time.monotonic() - started, last


def start_api(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, Path]:
    kc = tmp / "kubeconfig"
    api = subprocess.Popen(pinned([sys.executable, "-m", "pycoredns_conformance.apiserver", "--listen", "127.0.0.1:0",
                                   "--generate-services", str(args.services), "--endpoints-per-service",
                                   str(args.endpoints_per_service), "--kubeconfig-out", str(kc)], LOAD_CORE),
                           cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert api.stdout is not None
    first = api.stdout.readline().strip()
    api.stdout.readline()  # "kubeconfig written to ..."
    if not kc.exists():
        raise SystemExit(f"API server did not start: {first!r}")
    return api, kc


def make_server(label: str, binary: list[str], kc: Path, tmp: Path) -> Server:
    port, ready = free_port(), free_port()
    conf = tmp / f"Corefile.{label}"
    conf.write_text(COREFILE.format(port=port, ready=ready, kubeconfig=kc))
    return Server(label, [*binary, "-conf", str(conf)], port, f"http://127.0.0.1:{ready}/ready", cwd=ROOT,
                  log=tmp / f"{label}.log")


def ready_runs(servers: list[Server], n: int) -> None:
    """`n` starts per server, the order alternating per round: start -> /ready 200 and CPU seconds by then."""
    times: dict[str, list[tuple[float, float]]] = {s.label: [] for s in servers}
    for i in range(n):
        for s in servers if i % 2 == 0 else servers[::-1]:
            with s:
                ready = s.wait_ready(300)
                times[s.label].append((ready, s.cpu_seconds()))
            time.sleep(0.5)
    for label, runs in times.items():
        walls = sorted(r[0] for r in runs)
        cpu = ", ".join(f"{c:.2f}" for _, c in runs)
        print(f"{label}: start -> /ready 200 " + ", ".join(f"{w:.2f}" for w, _ in runs)
              + f" s (median {walls[len(walls) // 2]:.2f}); CPU by then {cpu} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--endpoints-per-service", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--other", default="/work/ref/bin/coredns", help="the server to compare with ('' for none)")
    ap.add_argument("--rows", default="", help="comma-separated prefixes of row names (default: all)")
    ap.add_argument("--ready-runs", type=int, default=0, help="only measure N starts of each server to /ready 200")
    args = ap.parse_args()
    if shutil.which("dnsperf") is None:
        raise SystemExit("dnsperf is needed (bash .ci/install)")
    binaries = {"pycoredns": [sys.executable, "-m", "pycoredns"]}
    if args.other and os.path.exists(args.other):
        binaries[Path(args.other).name] = [args.other]
    # an installed pycoredns starts from bytecode (pip compiles wheels); this tree may run with
    # PYTHONDONTWRITEBYTECODE, which would charge the compile of every module to the ready time
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pycoredns"), str(ROOT / "plugins")],
                   check=False, env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.monotonic()
        api, kc = start_api(args, tmp)
        print(f"API server: {args.services} services x {args.endpoints_per_service} endpoints, "
              f"up in {time.monotonic() - t0:.1f}s")
        servers = [make_server(label, cmd, kc, tmp) for label, cmd in binaries.items()]
        if args.ready_runs:
            try:
                ready_runs(servers, args.ready_runs)
            finally:
                api.terminate()
                api.wait(15)
            print(f"load average after: {load_average()}")
            return
        try:
            for s in servers:  # one at a time: the syncs do not share the core
                s.__enter__()
                ready = s.wait_ready(300)
                waited, rss = settled_rss(s)
                print(f"{s.label}: start -> /ready 200 {ready:.2f}s, RSS after sync {rss:.1f} MB (stable "
                      f"{waited:.0f}s after ready)")
            data = rows(args.services, random.Random(1))
            wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
            header = " | ".join(f"{s.label} qps | µs/ans" for s in servers)
            print(f"\n| row | {header} | ratio |")
            for name, (lines, edns) in data.items():
                if wanted and not any(name.startswith(w) for w in wanted):
                    continue
                path = write_queries(lines)
                try:
                    res = [run_row(s, path, args.seconds, edns=edns) for s in servers]
                finally:
                    os.unlink(path)
                cells = " | ".join(f"{r.get('qps', 0):,.0f} | {r.get('cpu_us', float('nan')):.1f}" for r in res)
                ratio = f"{res[0]['qps'] / res[1]['qps']:.2f}" if len(res) > 1 and res[1].get("qps") else ""
                print(f"| {name} | {cells} | {ratio} |  {'; '.join(r.get('rcodes', r.get('error', '')) for r in res)}",
                      flush=True)
            for s in servers:
                print(f"{s.label}: RSS after load {s.rss_mb():.1f} MB")
        finally:
            for s in servers:
                s.__exit__()
            api.terminate()
            api.wait(15)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
