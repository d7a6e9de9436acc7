"""Side-by-side runner pieces (not tests): servers pinned to one core, dnsperf pinned to the other.

    from bench.sidebyside import Server, run_row
    with Server("pycoredns", [sys.executable, "-m", "pycoredns", "-conf", path], port, ready_url) as s:
        s.wait_ready(60)
        print(run_row(s, datafile, seconds=10))

Each figure is measured on the server process itself: qps from dnsperf, CPU µs per answer from the
utime+stime delta in /proc/PID/stat over the completed queries, RSS from /proc/PID/status. A
server started through `taskset` is pinned with its children (CoreDNS's goroutines, pycoredns'
watch thread); the load generator runs on the other core.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import dnsperf

SERVER_CORE = "0"
LOAD_CORE = "1"


def pinned(cmd: list[str], core: str) -> list[str]:
    """`cmd` under `taskset -c core` when taskset is there (it is on the development machine)."""
    return ["taskset", "-c", core, *cmd] if shutil.which("taskset") else cmd


class Server:
    """One DNS server process, pinned to SERVER_CORE; `ready_url` answers 200 once it is synced."""

    def __init__(self, label: str, cmd: list[str], port: int, ready_url: str = "", cwd: str | Path | None = None,
                 log: str | Path | None = None) -> None:
        self.label = label
        self.cmd = cmd
        self.port = port
        self.ready_url = ready_url
        self.cwd = cwd
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def __enter__(self) -> Server:
        err = open(self.log, "w") if self.log else subprocess.DEVNULL  # the child keeps its copy
        self.started = time.monotonic()
        self.proc = subprocess.Popen(pinned(self.cmd, SERVER_CORE), cwd=self.cwd, stdout=err, stderr=err)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the start of the process to the first 200 from `ready_url` (polled every 20 ms)."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited with {self.proc.returncode} (log: {self.log})")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except (OSError, http.client.HTTPException):  # not listening yet, or not HTTP yet (a port
                pass  # another process held a moment: one 5k run got its own request line back)
            time.sleep(0.02)
        raise SystemExit(f"{self.label} not ready after {timeout}s")

    def cpu_seconds(self) -> float:
        """utime+stime of the server process (all its threads)."""
        return pid_cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def run_row(server: Server, datafile: str, seconds: int, clients: int = 16, edns: bool = False) -> dict:
    """dnsperf (pinned to LOAD_CORE) against `server`; adds `cpu_us` per completed query."""
    before = server.cpu_seconds()
    res = dnsperf(server.port, datafile, seconds=seconds, clients=clients, extra=["-e"] if edns else [],
                  prefix=pinned([], LOAD_CORE))
    used = server.cpu_seconds() - before
    if "qps" in res and res.get("completed", 0) > 0:
        res["cpu_us"] = used * 1e6 / res["completed"]
    return res


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pid_cpu_seconds(pid: int) -> float:
    """utime+stime of a process (all its threads) from /proc/PID/stat; nan once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_jiffies() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU ("0", "1", ...) since boot from /proc/stat; busy is everything but
    idle and iowait, i.e. any process's or interrupt's time on that core."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                ticks = [int(v) for v in vals[:8]]  # user nice system idle iowait irq softirq steal
                out[name[3:]] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def busy_share(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], core: str) -> float:
    """Share (0..1) of `core`'s time that was busy between two `core_jiffies` snapshots."""
    busy = after[core][0] - before[core][0]
    total = after[core][1] - before[core][1]
    return busy / total if total > 0 else float("nan")


def softirq_thread(core: str) -> dict[str, int]:
    """{"ksoftirqd": pid} of the kernel thread that runs `core`'s network receive work when it piles up
    (on loopback most of it runs in the sending process instead); {} when there is none."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == f"ksoftirqd/{core}":
                        return {"ksoftirqd": int(entry)}
            except OSError:
                continue
    return {}


def udp_receive_drops() -> int:
    """Datagrams the kernel dropped for a full socket receive buffer since boot (all sockets: Udp
    RcvbufErrors in /proc/net/snmp). A drop between a server and its upstream costs a query its
    timeout and retry, so the rate of a closed-loop dnsperf run falls while no core is saturated."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of all threads of a process so far; (0, 0) once it is
    gone. A voluntary one is a thread going to sleep with nothing to do (an empty socket), an
    involuntary one a thread preempted by other work on its core."""
    vol = invol = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return vol, invol


def sched_demand_seconds(pid: int) -> float:
    """Seconds the threads of a process have spent on a CPU or runnable waiting for one (the first two
    fields of /proc/PID/task/TID/schedstat, summed); 0 once it is gone. Its growth per second of wall
    time is how much of a core the process wanted: on a machine shared with other work, a server
    whose demand stays at ~1 core had queries waiting the whole time (server-bound) although it got
    only a share of its core; below 1, it was asleep for want of work for the rest."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait = f.read().split()[:2]
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile
        total += int(run) + int(wait)
    return total / 1e9
