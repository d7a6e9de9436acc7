"""Python calls per forwarded query, counted exactly (cProfile), in bench/compare.py's forward setup. Not a test.

    python bench/calls_per_query.py [--rows udp,tcp] [--queries 10000] [--top 60]
                                    [--tree /tmp/other-checkout]     # another pycoredns tree

The server runs bench/compare.py's `forward` Corefile (errors + forward to unbound, 10,000 distinct
names, no cache) in a subprocess; after a first pass through the names (the steady state of
bench/compare.py's rows, whose names repeat: the query parse and route memos hold them), a profiler is
switched on by a signal, dnsperf sends each name once more (`-n 1`), and the profiler is switched off
and dumped. Every Python-level call (functions and builtins/C methods) the server made while the
queries ran is divided by the number of queries dnsperf completed. The counts do not depend on load
or timing except for the few calls of the drain loops' awaits (wait_readable, the epoll wake-ups),
which grow when the loops find their sockets empty more often.

`--tree` runs another checkout: a `git archive` copy with `ln -s ../plugins pycoredns/plugins`,
started with `python3 -S` and PYTHONPATH=<copy>:<site-packages> (as bench/selflookup_bench.py).
"""

from __future__ import annotations

import argparse
import marshal
import os
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, write_queries  # noqa: E402
from bench.compare import FORWARD, NODELOCAL_LIKE, names, start_upstream, wait_answers  # noqa: E402
from bench.sidebyside import LOAD_CORE, pinned  # noqa: E402

ON, OFF = signal.SIGWINCH, signal.SIGURG  # signals pycoredns does not use

WRAPPER = """
import cProfile, signal, sys
prof = cProfile.Profile()
out = sys.argv[1]
def on(*_): prof.enable()
def off(*_):
    prof.disable()
    prof.dump_stats(out)
signal.signal(signal.SIGWINCH, on)
signal.signal(signal.SIGURG, off)
sys.argv = ["pycoredns", *sys.argv[2:]]
from pycoredns.cli import main
sys.exit(main())
"""

ROWS = {
    "udp": FORWARD.replace("{options}", ""),
    "tcp": FORWARD.replace("{options}", " {{\n        force_tcp\n    }}"),
    # the writer wrappers: errors, log (no line written: only denials), prometheus, forward (every query waits)
    "wrappers": FORWARD.replace("{options}", "").replace(
        "    errors\n", "    errors\n    log . {{\n        class denial\n    }}\n    prometheus 127.0.0.1:{prom}\n"),
    # bench/compare.py's node-local-style Corefile: the second pass is all cache hits (no waiting)
    "nodelocal": NODELOCAL_LIKE,
}


def count(stats_file: str) -> dict[str, int]:
    """function label -> calls, from a cProfile dump."""
    with open(stats_file, "rb") as f:
        stats = marshal.load(f)
    out: dict[str, int] = {}
    for (path, line, fn), (_cc, nc, _tt, _ct, _callers) in stats.items():
        label = fn if path == "~" else f"{Path(path).parent.name}/{Path(path).name}:{line}({fn})"
        out[label] = out.get(label, 0) + nc
    return out


def callers(stats_file: str, part: str) -> None:
    """Who calls the functions whose label contains `part`, and how often."""
    with open(stats_file, "rb") as f:
        stats = marshal.load(f)
    for (path, line, fn), (_cc, _nc, _tt, _ct, by) in stats.items():
        if part in f"{path}:{line}({fn})":
            print(f"{path}:{line}({fn}) called by:")
            for (cpath, cline, cfn), info in by.items():
                print(f"    {info[1]:8d}  {cpath}:{cline}({cfn})")


def run(row: str, queries: int, tree: str, upstream: str, tmp: Path, top: int, who: str = "") -> None:
    port = free_port()
    conf = tmp / f"Corefile.{row}"
    conf.write_text(ROWS[row].format(port=port, upstream=upstream, prom=free_port(), health=free_port()))
    stats = str(tmp / f"{row}.prof")
    env = dict(os.environ)
    cmd = [sys.executable]
    if tree:
        cmd.append("-S")
        env["PYTHONPATH"] = f"{tree}:{site.getsitepackages()[0]}"
    cmd += ["-c", WRAPPER, stats, "-conf", str(conf)]
    with open(tmp / f"{row}.log", "w") as log:
        proc = subprocess.Popen(pinned(cmd, "0"), cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_answers(port, "a.bench.test.")
        data = write_queries(names(queries))
        perf = [*pinned([], LOAD_CORE), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", data, "-n", "1",
                "-c", "16", "-q", "200"]
        subprocess.run(perf, capture_output=True, timeout=300, check=False)  # fills the parse and route memos
        time.sleep(0.5)
        proc.send_signal(ON)
        time.sleep(0.2)
        out = subprocess.run(perf, capture_output=True, text=True, timeout=300, check=False)
        time.sleep(0.2)
        proc.send_signal(OFF)
        for _ in range(100):
            if os.path.exists(stats) and os.path.getsize(stats) > 0:
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(15)
    completed = 0
    for line in out.stdout.splitlines():
        if "Queries completed:" in line:
            completed = int(line.split()[2])
    if not completed:
        raise SystemExit(f"dnsperf completed nothing:\n{out.stdout}\n{out.stderr}")
    if who:
        callers(stats, who)
    calls = count(stats)
    total = sum(calls.values())
    frames = sum(n for label, n in calls.items() if not label.startswith("<"))
    print(f"\n### {row}: {total / completed:.1f} calls per query, {frames / completed:.1f} of them "
          f"Python functions ({completed} queries, tree {tree or ROOT})\n")
    print("| calls/query | function |\n|---:|---|")
    for label, n in sorted(calls.items(), key=lambda kv: -kv[1])[:top]:
        if n / completed >= 0.05:
            print(f"| {n / completed:.2f} | `{label}` |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="udp,tcp", help=f"comma-separated, of {', '.join(ROWS)}")
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--tree", default="", help="another pycoredns checkout (default: this one)")
    ap.add_argument("--top", type=int, default=80)
    ap.add_argument("--callers", default="", help="also list the callers of the functions matching this text")
    args = ap.parse_args()
    ub = start_upstream()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for row in args.rows.split(","):
                run(row, args.queries, args.tree, ub.addr, Path(tmp), args.top, args.callers)
    finally:
        ub.stop()


if __name__ == "__main__":
    main()
