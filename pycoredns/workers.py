"""`-workers N`: N server processes on the same ports, one supervising parent (pycoredns only).

One CPython process runs Python on one core; CoreDNS uses all of them. With N > 1 the parent forks
N workers before trio starts (no threads exist yet). Each worker is an ordinary pycoredns process
that binds the configured addresses itself: DNS sockets and the health/ready/metrics HTTP sockets
set SO_REUSEPORT, so the kernel spreads UDP datagrams (by source address and port) and TCP
connections over the workers. The first worker starts alone; the others are forked once it serves,
so a broken Corefile is reported once and the parent exits 1. The parent writes the pidfile,
forwards SIGTERM, SIGINT, SIGQUIT and SIGUSR1 to every worker and waits. When any worker exits,
the parent stops the others and exits with the first non-zero status: a dead worker takes the server
down as a crash of CoreDNS would (the kubelet restarts it); a half-serving server is never left
behind. A worker stopped gracefully from outside (`kill -TERM <worker>`, exit status 0) is replaced
instead: it handed its address over to its siblings before exiting (`pycoredns.handover`), so the
restart loses no query. Workers get SIGTERM if the parent is killed (PR_SET_PDEATHSIG), so none is
orphaned; each worker has its own process group, so a Ctrl-C on a terminal is not seen twice (once from the
terminal, once forwarded: a second SIGINT means "exit now").

What stays per worker (README.md "Workers"): each worker has its own cache, its own kubernetes
watch and index, its own forward connections and health checks; reload (SIGUSR1 or the `reload`
plugin) happens in each worker; ephemeral ports (`:0`) give each worker a different port. What is
shared: `/metrics`, `/health` and `/ready` answer for the whole pod from whichever worker gets the
request (`pycoredns.pod`). `-workers auto` takes the count from the cgroup CPU quota (`auto_count`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Callable

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1)
MAX_RESTARTS = 1000  # replacements of gracefully stopped workers over the server's life (a bound)
_PR_SET_PDEATHSIG = 1

Worker = Callable[[int, Callable[[], None]], int]
"""Runs worker `index` to completion and returns its exit status; calls `ready()` once serving."""


def supervise(n: int, run_worker: Worker, pidfile: str | None = None) -> int:
    """Fork `n` workers, forward signals, return the exit status for the whole server."""
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig != signal.SIGUSR1:
            stopping = True
        for pid in list(children):
            _kill(pid, sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as a single process does
    rfd, wfd = os.pipe()
    pid = _fork(0, run_worker, wfd, children)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as ready_pipe:
        first_ready = ready_pipe.read(1) == b"1"  # EOF: the first worker exited before serving
    status = 0
    restarts = 0
    if not first_ready:
        children.pop(pid, None)
        return _reap(pid) or 1
    for i in range(1, n):
        if stopping:
            break
        _fork(i, run_worker, -1, children)
    _write_pidfile(pidfile)
    while children:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(raw)
        code = 128 - code if code < 0 else code  # killed by a signal: the shell's convention
        if code == 0 and not stopping and restarts < MAX_RESTARTS:
            restarts += 1  # stopped gracefully from outside: it handed its queries over; replace it
            _fork(index, run_worker, -1, children)
            continue
        if code and not status:
            status = code
        if not stopping:  # a worker died on its own: take the rest down
            stopping = True
            for other in list(children):
                _kill(other, signal.SIGTERM)
    return status


def _fork(index: int, run_worker: Worker, ready_fd: int, children: dict[int, int]) -> int:
    """Fork one worker and enter it in `children`; it writes b"1" to `ready_fd` (if >= 0) once it
    serves. Returns its pid.

    The forwarded signals stay blocked from before the fork until the worker is in `children`, so
    the parent's handler never misses it, and the child never runs that handler (it would signal
    its siblings).
    """
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    pid = os.fork()
    if pid != 0:
        children[pid] = index
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return pid
    code = 1  # the worker from here on: never return into the parent's code
    try:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which forwards it once
        _die_with_parent(parent)

        def ready() -> None:
            if ready_fd >= 0:
                os.write(ready_fd, b"1")
                os.close(ready_fd)

        code = run_worker(index, ready)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervising parent dies (Linux), so no worker is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _reap(pid: int) -> int:
    _, raw = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(raw)
    return 128 - code if code < 0 else code


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _write_pidfile(path: str | None) -> None:
    if not path:
        return
    try:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:
        print(f"[ERROR] Could not write pidfile: {e}", file=sys.stderr)


# -- `-workers auto`: the pod's CPU limit, as automaxprocs sets GOMAXPROCS for CoreDNS ----------------


def auto_count(root: str = "/") -> int:
    """Workers for `-workers auto`: the cgroup CPU quota rounded down (at least 1), at most the CPUs this
    process may run on; without a quota, those CPUs (Go's default GOMAXPROCS)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota(root)
    if quota is None:
        return max(1, cpus)
    return max(1, min(cpus, int(quota)))


def cpu_quota(root: str = "/") -> float | None:
    """CPUs allowed by this process's cgroup (quota / period), None when unlimited or unknown.

    cgroup v2: `cpu.max` ("max 100000" or "200000 100000") of the process's cgroup; v1:
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: unlimited) of its `cpu` controller. Looks in
    the process's own cgroup directory under the mount and then at the mount's top, which is the
    container's cgroup under a cgroup namespace (what a pod sees). `root` is for tests.
    """
    v2, v1 = _own_cgroups(os.path.join(root, "proc/self/cgroup"))
    base = os.path.join(root, "sys/fs/cgroup")
    if v2 is not None:
        for d in (os.path.join(base, v2.lstrip("/")), base):
            text = _read(os.path.join(d, "cpu.max"))
            if text is not None:
                parts = text.split()
                if parts[0] == "max" or len(parts) < 2:
                    return None
                return _ratio(parts[0], parts[1])
    for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
        for d in (os.path.join(base, mount, (v1 or "/").lstrip("/")), os.path.join(base, mount)):
            quota, period = _read(os.path.join(d, "cpu.cfs_quota_us")), _read(os.path.join(d, "cpu.cfs_period_us"))
            if quota is not None and period is not None:
                return None if quota.strip() == "-1" else _ratio(quota, period)
    return None


def _own_cgroups(path: str) -> tuple[str | None, str | None]:
    """(v2 path, v1 cpu controller path) from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (_read(path) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cgroup = parts
        if controllers == "":
            v2 = cgroup
        elif "cpu" in controllers.split(","):
            v1 = cgroup
    return v2, v1


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
