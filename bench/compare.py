"""The waiting-path workload matrix (issue 11), side by side with another server binary. Not a test.

    python bench/compare.py [--other /work/ref/bin/coredns] [--seconds 10] [--rows forward,seed]
                            [--pycoredns "python3 -m pycoredns"]      # or another checkout's command
    python bench/compare.py --seed [--services 5000 --externals 5000]  # only the seed-path mode

Every row runs one server at a time, pinned to core 0 with taskset; dnsperf (-c 16) and the upstream
(unbound, answering every name under bench.test. and NXDOMAIN without SOA under nx.test.) run on
core 1. Per row and server: qps, server CPU µs per answered query (utime+stime from /proc over the
completed queries), RSS after the run; then the ratios (qps pycoredns / other, CPU pycoredns / other).

The seed-path mode runs the two tiers of a cluster end to end: search-path-expanded pod lookups
(musl: ndots 5, A and AAAA per try) go to a node-local tier (cluster.local over TCP to the cluster
tier, everything else to the upstream); the cluster tier runs kubeadm's Corefile with kubernetes
against `pycoredns_conformance.apiserver` (its own process, on the load core) and forward. Both tiers
of one product share core 0, and the CPU figure counts both. `--corefile-dir` points the mode at an
operator's own Corefiles (nodelocal.conf, cluster.conf with {port}, {cluster_port}, {upstream},
{kubeconfig}, {ready} ... placeholders as in the built-in ones below).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import answers, dnsperf, free_port, write_queries  # noqa: E402
from bench.sidebyside import LOAD_CORE, SERVER_CORE, Server, load_average, pinned  # noqa: E402

CLIENTS = 16
OUTSTANDING = 200

# -- the single-server rows ------------------------------------------------------------------------------

CACHE_FORWARD = """.:{port} {{
    bind 127.0.0.1
    errors
    cache 30
    forward . {upstream}
}}
"""
FORWARD = """.:{port} {{
    bind 127.0.0.1
    errors
    forward . {upstream}{options}
}}
"""
NODELOCAL_LIKE = """.:{port} {{
    bind 127.0.0.1
    errors
    cache 30
    reload
    loop
    forward . {upstream} {{
        force_tcp
    }}
    prometheus 127.0.0.1:{prom}
    health 127.0.0.1:{health}
}}
"""


def names(n: int, zone: str = "bench.test", prefix: str = "n") -> list[str]:
    return [f"{prefix}{i}.{zone} A" for i in range(n)]


def nx_mix(n: int, rnd: random.Random) -> list[str]:
    """25 % of the names NXDOMAIN without SOA (not cacheable: every one goes upstream again)."""
    out = names(n)
    for i in range(0, n, 4):
        out[i] = f"x{i}.nx.test A"
    rnd.shuffle(out)
    return out


# name -> (Corefile template, dnsperf lines, warm-up pass first?)
ROWS: dict[str, tuple[str, Callable[[random.Random], list[str]], bool]] = {
    "cache hits, 2 names (errors, cache 30, forward)": (
        CACHE_FORWARD, lambda r: ["a.bench.test A", "b.bench.test A"], True),
    "forward UDP, 10,000 names, no cache": (
        FORWARD.replace("{options}", ""), lambda r: names(10000), False),
    "forward force_tcp, 10,000 names, no cache": (
        FORWARD.replace("{options}", " {{\n        force_tcp\n    }}"), lambda r: names(10000), False),
    "cache 30 + forward, 300,000 distinct names (misses)": (
        CACHE_FORWARD, lambda r: names(300000, prefix="m"), False),
    "node-local-style Corefile, 10,000 names after warm-up": (
        NODELOCAL_LIKE, lambda r: names(10000), True),
    "node-local-style, 25 % NXDOMAIN without SOA": (
        NODELOCAL_LIKE, lambda r: nx_mix(10000, r), True),
}


# -- the upstream ------------------------------------------------------------------------------------------


def start_upstream():
    """unbound on the load core: every name under bench.test. answers A 192.0.2.1 (a redirect zone),
    nx.test. answers NXDOMAIN without an SOA."""
    from pycoredns_conformance.upstream import Unbound

    ub = Unbound({"bench.test.": ["bench.test. 300 IN A 192.0.2.1"]}, zone_type="redirect",
                 extra='  incoming-num-tcp: 1024\n  local-zone: "nx.test." always_nxdomain')
    ub.start()
    assert ub.proc is not None
    subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CORE, str(ub.proc.pid)], capture_output=True, check=False)
    return ub


# -- measuring ---------------------------------------------------------------------------------------------


def measure(servers: list[Server], port: int, datafile: str, seconds: int) -> dict:
    """dnsperf (pinned to the load core) at `port`; CPU of every server in `servers` per completed query."""
    before = sum(s.cpu_seconds() for s in servers)
    res = dnsperf(port, datafile, seconds=seconds, clients=CLIENTS, outstanding=OUTSTANDING,
                  prefix=pinned([], LOAD_CORE))
    used = sum(s.cpu_seconds() for s in servers) - before
    if res.get("completed", 0) > 0:
        res["cpu_us"] = used * 1e6 / res["completed"]
    res["rss_mb"] = sum(s.rss_mb() for s in servers)
    return res


def cache_counts(prom: int) -> tuple[float, float]:
    """(hits, misses) summed over coredns_cache_{hits,misses}_total from the prometheus endpoint at
    127.0.0.1:prom; (nan, nan) when there is none. Both servers export the same metric names."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=5) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return float("nan"), float("nan")
    sums = {"coredns_cache_hits_total": 0.0, "coredns_cache_misses_total": 0.0}
    for line in text.splitlines():
        metric = line.split("{", 1)[0].split(" ", 1)[0]
        if metric in sums:
            sums[metric] += float(line.rsplit(" ", 1)[1])
    return sums["coredns_cache_hits_total"], sums["coredns_cache_misses_total"]


def measured_with_misses(servers: list[Server], port: int, datafile: str, seconds: int, prom: int) -> dict:
    """`measure`, plus the share of cache misses at the prometheus endpoint `prom` during the run (the
    node tier's, in the seed path) where there is one."""
    hits0, misses0 = cache_counts(prom)
    res = measure(servers, port, datafile, seconds)
    hits1, misses1 = cache_counts(prom)
    if hits1 + misses1 - hits0 - misses0 > 0:
        res["miss_pct"] = 100 * (misses1 - misses0) / (hits1 + misses1 - hits0 - misses0)
    return res


def warm(port: int, datafile: str) -> None:
    """One pass through the names (dnsperf -n 1), so that a cache holds them all."""
    subprocess.run([*pinned([], LOAD_CORE), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile,
                    "-n", "1", "-c", str(CLIENTS), "-q", str(OUTSTANDING)], capture_output=True, timeout=300,
                   check=False)


def wait_answers(port: int, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(port, name):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing answers {name} on port {port}")


def start(label: str, cmd: list[str], corefile: str, tmp: Path, port: int, probe: str) -> Server:
    conf = tmp / f"Corefile.{label}"
    conf.write_text(corefile)
    s = Server(label, [*cmd, "-conf", str(conf)], port, cwd=tmp, log=tmp / f"{label}.log")
    s.__enter__()
    try:
        wait_answers(port, probe)
    except BaseException:
        s.__exit__()
        raise
    return s


def row_cells(results: list[dict]) -> str:
    cells = []
    for r in results:
        if "qps" not in r:
            cells.append(f"error: {r.get('error', '')[:60]!r} | | |")
            continue
        miss = f" ({r['miss_pct']:.1f} % cache misses)" if "miss_pct" in r else ""
        cells.append(f"{r['qps']:,.0f} | {r.get('cpu_us', float('nan')):.1f}{miss} | {r['rss_mb']:.0f} | {r['lost']}")
    if len(results) == 2 and results[1].get("qps") and results[0].get("qps"):
        a, b = results
        cells.append(f"**{a['qps'] / b['qps']:.2f}** | **{a.get('cpu_us', 0) / b.get('cpu_us', 1):.2f}**")
    return " | ".join(cells)


def print_header(labels: list[str]) -> None:
    head = " | ".join(f"{lb} qps | µs/q | RSS MB | lost" for lb in labels)
    sep = "---|" * (1 + 4 * len(labels) + (2 if len(labels) == 2 else 0))
    print(f"\n| row | {head} |{' qps ratio | CPU ratio |' if len(labels) == 2 else ''}\n|{sep}", flush=True)


def run_rows(binaries: dict[str, list[str]], wanted: list[str], seconds: int, upstream: str, tmp: Path) -> None:
    rnd = random.Random(1)
    for name, (template, make, warm_first) in ROWS.items():
        if wanted and not any(w in name for w in wanted):
            continue
        path = write_queries(make(rnd))
        results = []
        try:
            for label, cmd in binaries.items():
                port = free_port()
                prom = free_port()
                corefile = template.format(port=port, upstream=upstream, prom=prom, health=free_port())
                s = start(label, cmd, corefile, tmp, port, "a.bench.test.")
                try:
                    if warm_first:
                        warm(port, path)
                    results.append(measured_with_misses([s], port, path, seconds, prom))
                finally:
                    s.__exit__()
        finally:
            os.unlink(path)
        print(f"| {name} | {row_cells(results)} |  {'; '.join(r.get('rcodes', '') for r in results)}", flush=True)


# -- the seed path ---------------------------------------------------------------------------------------------

NODELOCAL = """cluster.local:{port} {{
    bind 127.0.0.1
    errors
    cache {{
        success 9984 30
        denial 9984 5
    }}
    reload
    loop
    forward . 127.0.0.1:{cluster_port} {{
        force_tcp
    }}
    prometheus 127.0.0.1:{prom}
    health 127.0.0.1:{health}
}}
.:{port} {{
    bind 127.0.0.1
    errors
    cache 30
    reload
    loop
    forward . {upstream}
    prometheus 127.0.0.1:{prom}
}}
"""
CLUSTER = """.:{cluster_port} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{health2}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
        kubeconfig {kubeconfig}
    }}
    prometheus 127.0.0.1:{prom2}
    forward . {upstream}
    cache 30
    loop
    reload
    loadbalance
}}
"""
NAMESPACES = 10  # the API test server's generator: svc-i in namespace bench-(i % 10)
POD_NAMESPACE = "bench-0"
SEARCH = [f"{POD_NAMESPACE}.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def expand(name: str, found: Callable[[str], bool]) -> list[str]:
    """The queries musl sends for `name` (ndots 5): each search domain, then the name, A and AAAA each,
    until one try finds the name."""
    out = []
    tries = [f"{name}.{s}" for s in SEARCH] + [name] if name.count(".") < 5 else [name]
    for t in tries:
        out += [f"{t} A", f"{t} AAAA"]
        if found(t):
            break
    return out


def seed_lines(services: int, externals: int, rnd: random.Random, lookups: int = 20000) -> list[str]:
    svc = [f"svc-{i}.bench-{i % NAMESPACES}" for i in range(services)]
    ext = [f"host{i}.bench.test" for i in range(externals)]

    def found(t: str) -> bool:
        in_svc = t.endswith(".svc.cluster.local") and not t.endswith(f".{POD_NAMESPACE}.svc.cluster.local")
        return in_svc or t.endswith(".bench.test")

    out: list[str] = []
    for _ in range(lookups):
        out += expand(rnd.choice(svc) if rnd.random() < 0.5 else rnd.choice(ext), found)
    return out


def run_seed(binaries: dict[str, list[str]], args: argparse.Namespace, upstream: str, tmp: Path) -> None:
    from bench.cluster_bench import start_api

    api_args = argparse.Namespace(services=args.services, endpoints_per_service=args.endpoints_per_service)
    api, kc = start_api(api_args, tmp)
    sizes = [("seed path, small name set", 10, 10), (f"seed path, {args.services:,} services and "
                                                        f"{args.externals:,} external names",
                                                        args.services, args.externals)]
    try:
        for name, nsvc, next_ in sizes:
            path = write_queries(seed_lines(nsvc, next_, random.Random(2)))
            results = []
            try:
                for label, cmd in binaries.items():
                    p = {k: free_port() for k in ("port", "cluster_port", "prom", "prom2", "health", "health2",
                                                  "ready")}
                    own = args.corefile_dir
                    nodelocal_tpl = (own / "nodelocal.conf").read_text() if own else NODELOCAL
                    cluster_tpl = (own / "cluster.conf").read_text() if own else CLUSTER
                    fill = {**p, "upstream": upstream, "kubeconfig": kc}
                    cluster = Server(f"{label}-cluster", [*cmd, "-conf", str(_write(tmp, f"cluster.{label}",
                                                                                     cluster_tpl.format(**fill)))],
                                     p["cluster_port"], f"http://127.0.0.1:{p['ready']}/ready", cwd=tmp,
                                     log=tmp / f"{label}-cluster.log")
                    cluster.__enter__()
                    try:
                        cluster.wait_ready(300)
                        node = start(f"{label}-nodelocal", cmd, nodelocal_tpl.format(**fill), tmp, p["port"],
                                     "a.bench.test.")
                        try:
                            warm(p["port"], path)
                            results.append(measured_with_misses([node, cluster], p["port"], path, args.seconds,
                                                                p["prom"]))
                        finally:
                            node.__exit__()
                    finally:
                        cluster.__exit__()
            finally:
                os.unlink(path)
            print(f"| {name} | {row_cells(results)} |  {'; '.join(r.get('rcodes', '') for r in results)}",
                  flush=True)
    finally:
        api.terminate()
        api.wait(15)


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other", default="/work/ref/bin/coredns", help="the server binary to compare with ('' for none)")
    ap.add_argument("--pycoredns", default=f"{sys.executable} -m pycoredns", help="command that runs pycoredns")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rows", default="", help="comma-separated substrings of row names (default: all)")
    ap.add_argument("--seed", action="store_true", help="only the seed-path mode")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed-path mode")
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--externals", type=int, default=5000)
    ap.add_argument("--endpoints-per-service", type=int, default=2)
    ap.add_argument("--corefile-dir", type=Path, default=None,
                    help="the seed path's nodelocal.conf and cluster.conf templates (default: built in)")
    args = ap.parse_args()
    if shutil.which("dnsperf") is None or shutil.which("taskset") is None:
        raise SystemExit("dnsperf and taskset are needed (bash .ci/install)")
    binaries = {"pycoredns": shlex.split(args.pycoredns)}
    if args.other and os.path.exists(args.other):
        binaries[Path(args.other).name] = [args.other]
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs ({model}); "
          f"servers on core {SERVER_CORE}, dnsperf -c {CLIENTS} -q {OUTSTANDING} and upstream on core {LOAD_CORE}; "
          f"load average before: {load_average()}", flush=True)
    ub = start_upstream()
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            wanted = [w.strip() for w in args.rows.split(",") if w.strip()]
            print_header(list(binaries))
            if not args.seed:
                run_rows(binaries, wanted, args.seconds, ub.addr, tmp)
            if not args.no_seed:
                run_seed(binaries, args, ub.addr, tmp)
    finally:
        ub.stop()
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
