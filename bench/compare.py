"""The waiting-path workload matrix (issue 11), side by side with another server binary. Not a test.

    python bench/compare.py [--other /work/ref/bin/coredns] [--rounds 3] [--seconds 10] [--rows misses,services]
                            [--pycoredns "python3 -m pycoredns"]      # or another checkout's command
    python bench/compare.py --seed [--services 5000 --externals 5000]  # only the seed-path mode

Every row runs one server at a time, pinned to core 0 with taskset; dnsperf (-c 16 -q 200) and the
upstream (unbound, answering every name under bench.test. and NXDOMAIN without SOA under nx.test.)
run on core 1. Per row and server: qps, server CPU µs per answered query (utime+stime from /proc over
the completed queries), RSS after the run; then the ratios (qps pycoredns / other, CPU pycoredns / other).

Rounds: the whole matrix runs `--rounds` times, the server order alternating (A B, then B A, ...), so
the rounds of one row lie minutes apart; every run is a fresh server process (and its warm-up pass).
Each run prints a line as it ends; then the table of medians with each figure's min-max and the
ratios of the medians, and a second table of who was busy: the server's own share of core 0 and its
demand (CPU time its threads ran or waited runnable per second, /proc schedstat), the same for the
load side on core 1 (dnsperf, unbound, the API server, the load core's ksoftirqd), each core's busy
share with everybody's work, and unbound's and dnsperf's CPU µs and wake-ups per query. A side whose
demand is ~1 core or more had work waiting the whole run: it set the rate (the `limit` column),
whatever share of its core it got beside other work on a shared machine, where the qps columns show
those shares and the CPU µs per query is the comparable figure.

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
import dataclasses
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import answers, finish_dnsperf, free_port, start_dnsperf, write_queries  # noqa: E402
from bench.sidebyside import (  # noqa: E402
    LOAD_CORE,
    SERVER_CORE,
    Server,
    busy_share,
    context_switches,
    core_jiffies,
    load_average,
    pid_cpu_seconds,
    pinned,
    sched_demand_seconds,
    softirq_thread,
    udp_receive_drops,
)

CLIENTS = 16
OUTSTANDING = 200
SECONDS = 10  # per measured run
ROUNDS = 3  # the full matrix took 10 min 51 s and 12 min 48 s at 10 s per run (13:33, 13:48 UTC, load 4-11)

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


def measure(servers: list[Server], port: int, datafile: str, seconds: int,
            helpers: dict[str, int] | None = None) -> dict:
    """dnsperf (pinned to the load core) at `port`; CPU of every server in `servers` per completed query.

    Besides qps, lost, `cpu_us` and `rss_mb`: who was busy, over a window inside the run (from ~1 s
    after dnsperf starts to ~0.5 s before its time limit, so start-up and the drain of the last replies
    are left out): `srv_core`, the servers' CPU seconds per second (their share of core 0);
    `<name>_core` for dnsperf and each process in `helpers` (name -> pid on the load core: unbound, the
    API server, the load core's ksoftirqd), and `load_core`, their sum (the load side's share of core
    1); `core0`/`core1`, each core's busy share from /proc/stat, any process's (on a shared machine other
    engineers' niced work fills what ours leaves idle, so these read ~100 % there). Over the whole
    run: `<name>_us` for dnsperf and the helpers, their CPU µs per completed query."""
    helpers = helpers or {}
    before = sum(s.cpu_seconds() for s in servers)
    helpers_before = {name: pid_cpu_seconds(pid) for name, pid in helpers.items()}
    drops = udp_receive_drops()
    proc = start_dnsperf(port, datafile, seconds=seconds, clients=CLIENTS, outstanding=OUTSTANDING,
                         prefix=pinned([], LOAD_CORE))
    started = time.monotonic()
    watched = {**helpers, "dnsperf": proc.pid}
    window = seconds >= 3
    if window:
        time.sleep(1.0)
        snap = _snapshot(servers, watched)
        time.sleep(max(0.0, started + seconds - 0.5 - time.monotonic()))
        snap2 = _snapshot(servers, watched)
    res = finish_dnsperf(proc, seconds + 60)
    res["udp_drops"] = float(udp_receive_drops() - drops)
    used = sum(s.cpu_seconds() for s in servers) - before
    done = res.get("completed", 0)
    if done > 0:
        res["cpu_us"] = used * 1e6 / done
        res["dnsperf_us"] = res["cpu_s"] * 1e6 / done
        for name, pid in helpers.items():
            res[f"{name}_us"] = (pid_cpu_seconds(pid) - helpers_before[name]) * 1e6 / done
    if window:
        wall = snap2["t"] - snap["t"]
        res["srv_core"] = (snap2["servers"] - snap["servers"]) / wall
        res["sleeps_s"] = (snap2["sleeps"] - snap["sleeps"]) / wall
        res["srv_demand"] = (snap2["demand"] - snap["demand"]) / wall
        res["load_demand"] = (snap2["load_demand"] - snap["load_demand"]) / wall
        res["preempted_s"] = (snap2["preempted"] - snap["preempted"]) / wall
        res["core0"] = busy_share(snap["cores"], snap2["cores"], SERVER_CORE)
        res["core1"] = busy_share(snap["cores"], snap2["cores"], LOAD_CORE)
        for name in watched:
            res[f"{name}_core"] = (snap2[name] - snap[name]) / wall
            res[f"{name}_sleeps_s"] = float(snap2[f"{name}_sleeps"] - snap[f"{name}_sleeps"]) / wall
        res["load_core"] = sum(res[f"{name}_core"] for name in watched)
    res["rss_mb"] = sum(s.rss_mb() for s in servers)
    return res


def _snapshot(servers: list[Server], watched: dict[str, int]) -> dict:
    switches = [context_switches(s.pid) for s in servers]
    return {"t": time.monotonic(), "cores": core_jiffies(), "servers": sum(s.cpu_seconds() for s in servers),
            "sleeps": sum(v for v, _ in switches), "preempted": sum(i for _, i in switches),
            "demand": sum(sched_demand_seconds(s.pid) for s in servers),
            "load_demand": sum(sched_demand_seconds(pid) for pid in watched.values()),
            **{name: pid_cpu_seconds(pid) for name, pid in watched.items()},
            **{f"{name}_sleeps": context_switches(pid)[0] for name, pid in watched.items()}}


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


def measured_with_misses(servers: list[Server], port: int, datafile: str, seconds: int, prom: int,
                         helpers: dict[str, int]) -> dict:
    """`measure`, plus the share of cache misses at the prometheus endpoint `prom` during the run (the
    node tier's, in the seed path) where there is one."""
    hits0, misses0 = cache_counts(prom)
    res = measure(servers, port, datafile, seconds, helpers)
    hits1, misses1 = cache_counts(prom)
    if hits1 + misses1 - hits0 - misses0 > 0:
        res["miss_pct"] = 100 * (misses1 - misses0) / (hits1 + misses1 - hits0 - misses0)
    return res


def warm(port: int, datafile: str) -> None:
    """One pass through the names (dnsperf -n 1), so that a cache holds them all."""
    subprocess.run([*pinned([], LOAD_CORE), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile,
                    "-n", "1", "-c", str(CLIENTS), "-q", str(OUTSTANDING)], capture_output=True, timeout=300,
                   check=False)


def wait_answers(port: int, name: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(port, name):
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"nothing answers {name} on port {port}")


def start(label: str, cmd: list[str], corefile: str, tmp: Path, port: int, probe: str) -> Server:
    conf = tmp / f"Corefile.{label}"
    conf.write_text(corefile)
    s = Server(label, [*cmd, "-conf", str(conf)], port, cwd=tmp, log=tmp / f"{label}.log")
    s.__enter__()
    try:
        wait_answers(port, probe, proc=s.proc)
    except SystemExit as e:
        s.__exit__()
        raise failed(e, s) from None
    except BaseException:
        s.__exit__()
        raise
    return s


def failed(e: SystemExit, s: Server) -> SystemExit:
    """`e` with the end of the server's log (the temp dir holding it is gone when the matrix ends)."""
    try:
        tail = Path(s.log).read_text(errors="replace")[-300:].strip() if s.log else ""
    except OSError:
        tail = ""
    return SystemExit(f"{e}; log: {tail!r}")


def _fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # nan (not measured) prints as a dash


def row_cells(results: list[dict]) -> str:
    """The table cells of one row: per server qps, µs/q (and cache misses), RSS, lost and its own share
    of core 0; with two servers the ratios. A result from `summarize` shows each figure's min-max."""
    cells = []
    for r in results:
        if "qps" not in r:
            cells.append(f"error: {r.get('error', '')[:60]!r} | | | |")
            continue
        miss = f" ({r['miss_pct']:.1f} % cache misses)" if r.get("miss_pct", NAN) == r.get("miss_pct") else ""
        qps, cpu = f"{r['qps']:,.0f}", _fmt(r.get("cpu_us", NAN), ".1f")
        if "qps_span" in r:
            qps += " ({:,.0f}-{:,.0f})".format(*r["qps_span"])
            cpu += " ({:.1f}-{:.1f})".format(*r["cpu_span"])
        if r.get("rounds", 0) < r.get("of", 0):
            qps += f" [{r['rounds']} of {r['of']} rounds ran]"
        core = _fmt(100 * r.get("srv_core", NAN), ".0f")
        cells.append(f"{qps} | {cpu}{miss} | {r['rss_mb']:.0f} | {r['lost']} | {core}")
    if len(results) == 2 and results[1].get("qps") and results[0].get("qps"):
        a, b = results
        cells.append(f"**{a['qps'] / b['qps']:.2f}** | **{a.get('cpu_us', 0) / b.get('cpu_us', 1):.2f}**")
    return " | ".join(cells)


def print_header(labels: list[str]) -> None:
    head = " | ".join(f"{lb} qps | µs/q | RSS MB | lost | core 0 %" for lb in labels)
    sep = "---|" * (1 + 5 * len(labels) + (2 if len(labels) == 2 else 0))
    print(f"\n| row | {head} |{' qps ratio | CPU ratio |' if len(labels) == 2 else ''}\n|{sep}", flush=True)


NAN = float("nan")
LIMIT = 0.95  # a side's demand (ran or runnable) in cores at or above this: it was the limit


def summarize(runs: list[dict]) -> dict:
    """The median of every figure over the rounds of one row and server (qps and µs/q with their
    min-max as `qps_span`, `cpu_span`); lost is the sum. A round that failed is left out."""
    ok = [r for r in runs if "qps" in r]
    if not ok:
        return runs[-1] if runs else {"error": "not run"}
    out: dict = {"lost": sum(r["lost"] for r in ok), "rounds": len(ok), "of": len(runs)}
    for key in {k for r in ok for k, v in r.items() if isinstance(v, float) and k != "lost"}:
        vals = [r[key] for r in ok if key in r and r[key] == r[key]]
        out[key] = statistics.median(vals) if vals else NAN
    if len(ok) > 1:
        out["qps_span"] = (min(r["qps"] for r in ok), max(r["qps"] for r in ok))
        cpus = [r.get("cpu_us", NAN) for r in ok]
        out["cpu_span"] = (min(cpus), max(cpus))
    return out


def limit(r: dict) -> str:
    """What set the rate of one measured row and server (medians). Demand is the CPU time a side's
    threads ran or waited runnable per second (/proc schedstat): at LIMIT of a core or more that side
    had work queued the whole time, whatever share of the core it got beside other work; below, it
    slept for want of work part of the time. The server's demand counts both tiers in the seed rows
    (one tier waits runnable while the other runs, so a saturated pair reads above 1)."""
    server, load = r.get("srv_demand", NAN) >= LIMIT, r.get("load_demand", NAN) >= LIMIT
    if server and load:
        return "both cores"
    return "server" if server else "load core" if load else "neither core saturated"


def print_load_side(rows: list[str], labels: list[str], table: dict[str, dict[str, dict]]) -> None:
    """Per row and server (medians over the rounds): the server's share of core 0 and its demand (ran
    or waited runnable, in cores), the load side's (dnsperf, unbound, the API server, ksoftirqd) share
    of core 1 and its demand, each core's busy share with everybody's work, and unbound's and
    dnsperf's CPU µs and sleeps (wake-ups) per query."""
    print("\n| row | server | server: share of core 0 % (demand) | load side: share of core 1 % (demand) "
          "| core 0 / core 1 busy % | unbound µs/q (wake-ups/q) | dnsperf µs/q (wake-ups/q) | limit |\n"
          "|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        for label in labels:
            r = table[row][label]
            if "qps" not in r:
                continue
            srv, side, c0, c1 = (_fmt(100 * r.get(k, NAN), ".0f") for k in ("srv_core", "load_core", "core0", "core1"))
            srv += f" ({_fmt(r.get('srv_demand', NAN), '.2f')})"
            side += f" ({_fmt(r.get('load_demand', NAN), '.2f')})"
            side_cells = [f"{_fmt(r.get(f'{n}_us', NAN), '.1f')} "
                          f"({_fmt(r.get(f'{n}_sleeps_s', NAN) / r['qps'], '.2f')})" for n in ("unbound", "dnsperf")]
            print(f"| {row} | {label} | {srv} | {side} | {c0} / {c1} | {' | '.join(side_cells)} | {limit(r)} |",
                  flush=True)


def run_line(rnd: int, rounds: int, row: str, label: str, r: dict) -> str:
    """One measured run as a line (printed as the matrix goes, so a long run shows its progress)."""
    if "qps" not in r:
        return f"round {rnd}/{rounds} · {row} · {label}: error {r.get('error', '')[:200]!r}"

    def pct(key: str) -> str:
        return _fmt(100 * r.get(key, NAN), ".0f") + " %"

    def us(key: str) -> str:
        return _fmt(r.get(key, NAN), ".1f") + " µs/q"

    return (f"round {rnd}/{rounds} · {row} · {label}: {r['qps']:,.0f} qps, {us('cpu_us')}, lost {r['lost']}, "
            f"latency {_fmt(r.get('avg_latency_ms', NAN), '.2f')} ms (max {_fmt(r.get('max_latency_ms', NAN), '.0f')}),"
            " "
            f"UDP receive-buffer drops {r.get('udp_drops', NAN):.0f}; "
            f"core 0: server {pct('srv_core')} (demand {_fmt(r.get('srv_demand', NAN), '.2f')} cores, sleeps "
            f"{_fmt(r.get('sleeps_s', NAN), ',.0f')}/s, preempted {_fmt(r.get('preempted_s', NAN), ',.0f')}/s), "
            f"busy {pct('core0')}; core 1: load side {pct('load_core')} (demand "
            f"{_fmt(r.get('load_demand', NAN), '.2f')}), "
            f"busy {pct('core1')}, unbound {us('unbound_us')}, dnsperf {us('dnsperf_us')}; load {r.get('load', '?')}; "
            f"{r.get('wall', NAN):.0f} s in all")


@dataclasses.dataclass
class Context:
    """What every row's run needs: the upstream, the temp dir, the time per run, the load-core processes."""

    upstream: str
    tmp: Path
    seconds: int
    helpers: dict[str, int]


#: one row: (name, run(label, server command) -> the measured dict of one fresh server process)
Row = tuple[str, Callable[[str, list[str]], dict]]


def server_row(template: str, path: str, warm_first: bool, ctx: Context) -> Callable[[str, list[str]], dict]:
    """A single-server row: a fresh server on `template`, a warm-up pass when asked, one measurement."""

    def run(label: str, cmd: list[str]) -> dict:
        port, prom = free_port(), free_port()
        corefile = template.format(port=port, upstream=ctx.upstream, prom=prom, health=free_port())
        s = start(label, cmd, corefile, ctx.tmp, port, "a.bench.test.")
        try:
            if warm_first:
                warm(port, path)
            return measured_with_misses([s], port, path, ctx.seconds, prom, ctx.helpers)
        finally:
            s.__exit__()

    return run


def run_matrix(rows: list[Row], binaries: dict[str, list[str]], rounds: int) -> None:
    """Every row, `rounds` times over the whole matrix (so a row's rounds lie minutes apart and a load
    spike on the shared machine hits one of them); the server order alternates per round (A B, B A, ...).
    Then the table of medians and the load side."""
    labels = list(binaries)
    table: dict[str, dict[str, list[dict]]] = {name: {lb: [] for lb in labels} for name, _ in rows}
    for i in range(rounds):
        order = labels if i % 2 == 0 else labels[::-1]
        for name, run in rows:
            for label in order:
                t0 = time.monotonic()
                try:
                    r = run(label, binaries[label])
                except (OSError, subprocess.SubprocessError, SystemExit) as e:
                    r = {"error": str(e)}
                r["load"] = load_average()
                r["wall"] = time.monotonic() - t0  # start, warm-up, measurement and stop
                table[name][label].append(r)
                print(run_line(i + 1, rounds, name, label, r), flush=True)
    medians = {name: {lb: summarize(table[name][lb]) for lb in labels} for name in table}
    print(f"\nMedians over {rounds} round(s) (min-max in brackets); ratios are of the medians; "
          "core 0 % is the server's own share of its core (both tiers in the seed rows).")
    print_header(labels)
    for name, _ in rows:
        results = [medians[name][lb] for lb in labels]
        rcodes = "; ".join(next((r["rcodes"] for r in table[name][lb][::-1] if "rcodes" in r), "") for lb in labels)
        print(f"| {name} | {row_cells(results)} |  {rcodes}", flush=True)
    print_load_side([name for name, _ in rows], labels, medians)


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


def seed_row(path: str, kc: Path, args: argparse.Namespace, ctx: Context) -> Callable[[str, list[str]], dict]:
    """A seed-path row: a fresh cluster tier (waited for /ready) and node-local tier of one product on
    core 0, a warm-up pass through the lookups, one measurement counting both tiers' CPU."""

    def run(label: str, cmd: list[str]) -> dict:
        p = {k: free_port() for k in ("port", "cluster_port", "prom", "prom2", "health", "health2", "ready")}
        own = args.corefile_dir
        nodelocal_tpl = (own / "nodelocal.conf").read_text() if own else NODELOCAL
        cluster_tpl = (own / "cluster.conf").read_text() if own else CLUSTER
        fill = {**p, "upstream": ctx.upstream, "kubeconfig": kc}
        conf = _write(ctx.tmp, f"cluster.{label}", cluster_tpl.format(**fill))
        cluster = Server(f"{label}-cluster", [*cmd, "-conf", str(conf)], p["cluster_port"],
                         f"http://127.0.0.1:{p['ready']}/ready", cwd=ctx.tmp, log=ctx.tmp / f"{label}-cluster.log")
        with cluster:
            try:
                cluster.wait_ready(300)
            except SystemExit as e:
                raise failed(e, cluster) from None
            node = start(f"{label}-nodelocal", cmd, nodelocal_tpl.format(**fill), ctx.tmp, p["port"], "a.bench.test.")
            try:
                warm(p["port"], path)
                return measured_with_misses([node, cluster], p["port"], path, ctx.seconds, p["prom"], ctx.helpers)
            finally:
                node.__exit__()

    return run


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def main() -> None:
    global CLIENTS, OUTSTANDING  # the load every row uses (--clients, --outstanding)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other", default="/work/ref/bin/coredns", help="the server binary to compare with ('' for none)")
    ap.add_argument("--pycoredns", default=f"{sys.executable} -m pycoredns", help="command that runs pycoredns")
    ap.add_argument("--seconds", type=int, default=SECONDS, help="dnsperf's time per measured run")
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help="passes over the matrix, the server order alternating; the tables show medians")
    ap.add_argument("--clients", type=int, default=CLIENTS, help="dnsperf -c (its sockets)")
    ap.add_argument("--outstanding", type=int, default=OUTSTANDING, help="dnsperf -q (queries in flight)")
    ap.add_argument("--rows", default="", help="comma-separated substrings of row names, e.g. misses,services "
                    "(default: all; the seed rows too)")
    ap.add_argument("--seed", action="store_true", help="only the seed-path mode")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed-path mode")
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--externals", type=int, default=5000)
    ap.add_argument("--endpoints-per-service", type=int, default=2)
    ap.add_argument("--corefile-dir", type=Path, default=None,
                    help="the seed path's nodelocal.conf and cluster.conf templates (default: built in)")
    args = ap.parse_args()
    CLIENTS, OUTSTANDING = args.clients, args.outstanding
    if shutil.which("dnsperf") is None or shutil.which("taskset") is None:
        raise SystemExit("dnsperf and taskset are needed (bash .ci/install)")
    binaries = {"pycoredns": shlex.split(args.pycoredns)}
    if args.other and os.path.exists(args.other):
        binaries[Path(args.other).name] = [args.other]
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs ({model}); "
          f"servers on core {SERVER_CORE}, dnsperf -c {CLIENTS} -q {OUTSTANDING} and upstream on core {LOAD_CORE}; "
          f"{args.rounds} round(s) of {args.seconds} s per row and server; load average before: {load_average()}",
          flush=True)
    wanted = [w.strip() for w in args.rows.split(",") if w.strip()]

    def chosen(name: str) -> bool:
        return not wanted or any(w in name for w in wanted)

    ub = start_upstream()
    files: list[str] = []
    api = None
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            ctx = Context(ub.addr, Path(tmpdir), args.seconds, {"unbound": ub.proc.pid, **softirq_thread(LOAD_CORE)})
            rows: list[Row] = []
            rnd = random.Random(1)
            for name, (template, make, warm_first) in ROWS.items() if not args.seed else ():
                if chosen(name):
                    files.append(write_queries(make(rnd)))
                    rows.append((name, server_row(template, files[-1], warm_first, ctx)))
            seeds = [("seed path, small name set", 10, 10),
                     (f"seed path, {args.services:,} services and {args.externals:,} external names",
                      args.services, args.externals)]
            seeds = [sz for sz in seeds if chosen(sz[0])] if not args.no_seed else []
            if seeds:
                from bench.cluster_bench import start_api

                api_args = argparse.Namespace(services=args.services, endpoints_per_service=args.endpoints_per_service)
                api, kc = start_api(api_args, ctx.tmp)
                ctx.helpers["apiserver"] = api.pid
                for name, nsvc, next_ in seeds:
                    files.append(write_queries(seed_lines(nsvc, next_, random.Random(2))))
                    rows.append((name, seed_row(files[-1], kc, args, ctx)))
            run_matrix(rows, binaries, args.rounds)
    finally:
        if api is not None:
            api.terminate()
            api.wait(15)
        ub.stop()
        for path in files:
            os.unlink(path)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
