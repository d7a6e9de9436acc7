"""Benchmark the kubernetes plugin on a large synthetic cluster (not a test; nothing is asserted).

    python bench/kubernetes_bench.py [--services 5000] [--endpoints-per-service 10] [--seconds 10]

Starts the Kubernetes API test server (its own process) with N services and N*M endpoints, then
`python -m pycoredns` as a subprocess with `kubernetes` (no cache) and `ready`, and reports:
time from start to `/ready` 200, resident memory after the sync (VmRSS from /proc/<pid>/status)
next to CoreDNS's sizing formula MB = (pods + services)/1000 + 54, and dnsperf QPS for service A
and SRV queries (`-l SECONDS`). The side-by-side matrix against CoreDNS is `bench/cluster_bench.py`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
    return port


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until GET url returns 200 (bounded by timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"pycoredns exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"not ready after {timeout}s")


def dnsperf(port: int, queries: list[str], seconds: int, edns: bool = False) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(queries) + "\n")
        path = f.name
    try:
        cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", path, "-l", str(seconds), "-c", "4", "-q", "200"]
        out = subprocess.run(cmd + (["-e"] if edns else []), capture_output=True, text=True, timeout=seconds + 30)
    finally:
        os.unlink(path)
    m = re.search(r"Queries per second:\s+([\d.]+)", out.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", out.stdout)
    rc = re.search(r"Response codes:\s+(.*)", out.stdout)
    if not m:
        return f"dnsperf failed: {out.stdout[-300:]} {out.stderr[-300:]}"
    return f"{float(m.group(1)):,.0f} qps (lost {lost.group(1) if lost else '?'}; {rc.group(1) if rc else ''})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--endpoints-per-service", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if shutil.which("dnsperf") is None:
        print("dnsperf not installed: QPS will be skipped")

    t0 = time.monotonic()
    n_eps = args.services * args.endpoints_per_service
    with tempfile.TemporaryDirectory() as tmp:
        kc = Path(tmp) / "kubeconfig"
        # the API server in its own process, as it would be on its own machine
        api = subprocess.Popen([sys.executable, "-m", "pycoredns_conformance.apiserver", "--listen", "127.0.0.1:0",
                                "--generate-services", str(args.services), "--endpoints-per-service",
                                str(args.endpoints_per_service), "--kubeconfig-out", str(kc)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert api.stdout is not None
        first = api.stdout.readline().strip()
        api.stdout.readline()  # "kubeconfig written to ..."
        if not kc.exists():
            raise SystemExit(f"API server did not start: {first!r}")
        print(f"API server ({first}): {args.services} services, {n_eps} endpoints, "
              f"up in {time.monotonic() - t0:.1f}s")
        dns_port, ready_port = free_port(), free_port()
        corefile = Path(tmp) / "Corefile"
        corefile.write_text(f".:{dns_port} {{\n bind 127.0.0.1\n ready 127.0.0.1:{ready_port}\n"
                            f" kubernetes cluster.local in-addr.arpa {{\n  kubeconfig {kc}\n"
                            f"  startup_timeout 120s\n }}\n}}\n")
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "pycoredns", "-conf", str(corefile)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ready = wait_ready(f"http://127.0.0.1:{ready_port}/ready", proc, 300)
            print(f"start -> /ready 200: {ready:.2f}s (wall {time.monotonic() - start:.2f}s)")
            time.sleep(1)
            mem = rss_mb(proc.pid)
            formula_svc = args.services / 1000 + 54
            formula_all = (n_eps + args.services) / 1000 + 54
            print(f"RSS after sync: {mem:.1f} MB; CoreDNS formula (pods+services)/1000+54: "
                  f"{formula_svc:.1f} MB with 0 pods, {formula_all:.1f} MB counting one pod per endpoint")
            rnd = random.Random(1)
            picks = [rnd.randrange(args.services) for _ in range(20000)]
            names = [f"svc-{i}.bench-{i % 10}.svc.cluster.local" for i in picks]
            if shutil.which("dnsperf"):
                print("service A:  ", dnsperf(dns_port, [f"{n} A" for n in names], args.seconds))
                srv = [f"_http._tcp.{n} SRV" for n in names]
                print("service SRV:", dnsperf(dns_port, srv, args.seconds))
                # every 10th generated service is headless: 10 SRV + 10 glue records exceed 512 bytes,
                # so without EDNS those replies go through the (dnslib) truncation in the server's scrub
                print("service SRV, EDNS 4096:", dnsperf(dns_port, srv, args.seconds, edns=True))
                clusterip = [q for q, i in zip(srv, picks, strict=True) if i % 10 != 9]
                print("ClusterIP service SRV only:", dnsperf(dns_port, clusterip, args.seconds))
            print(f"RSS after load: {rss_mb(proc.pid):.1f} MB")
        finally:
            for p in (proc, api):
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


if __name__ == "__main__":
    main()
