"""Run cases against a target and collect results.

Targets:
* `ServerTarget` - a server someone else started (`--server HOST:PORT`): only cases marked `server: true`
  (the cluster-DNS records of the fixture cluster) that need no upstream of ours.
* `BinaryTarget` - the suite starts the binary itself (`--binary CMD`), once per Corefile group, with
  `-conf FILE`, explicit loopback ports, the API test server and unbound upstreams it controls.

Groups run in parallel threads (each has its own server process and upstreams); the cases of a group
run in file order, since steps (`sleep`, `stop_upstream`) build on what came before.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from . import kube
from .cases import DEFAULT_REQUIRED, Case, Query
from .compare import metric_present, reply_summary
from .upstream import MAIN_ZONES, SECOND_ZONES, Unbound, free_port

PASS, FAIL, ERROR, SKIP, XFAIL, XPASS = "pass", "fail", "error", "skip", "xfail", "xpass"
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_PORT_NAMES = ("PORT", "PORT2", "HEALTH_PORT", "READY_PORT", "METRICS_PORT")
START_TIMEOUT = 30.0


@dataclass
class Result:
    case: Case
    status: str
    expected: str = ""
    got: str = ""
    detail: str = ""
    seconds: float = 0.0

    def required(self, levels: tuple[str, ...]) -> bool:
        return self.case.level in levels

    def as_dict(self) -> dict[str, Any]:
        c = self.case
        return {"id": c.id, "area": c.area, "name": c.name, "level": c.level, "status": self.status,
                "query": c.query.text() if c.query else c.http.text() if c.http else None,
                "corefile": c.corefile_name or None,
                "expected": self.expected, "got": self.got, "detail": self.detail,
                "seconds": round(self.seconds, 3), "description": c.description}


def send(q: Query, host: str, port: int) -> dns.message.Message:
    """One query as a stub resolver sends it (RD set unless `rd: false`)."""
    msg = dns.message.make_query(q.name, q.type, q.rclass, use_edns=0 if q.edns else False,
                                 payload=q.bufsize, want_dnssec=q.do)
    if not q.rd:
        msg.flags &= ~dns.flags.RD
    if q.cd:
        msg.flags |= dns.flags.CD
    if q.proto == "tcp":
        return dns.query.tcp(msg, host, timeout=q.timeout, port=port)
    return dns.query.udp(msg, host, timeout=q.timeout, port=port, ignore_unexpected=True)


def expected_text(case: Case) -> str:
    if case.exit is not None:
        return f"exit {case.exit}" + (f", stderr ~ {case.stderr!r}" if case.stderr else "")
    if case.http is not None:
        return case.http.summary()
    return case.expect.summary() if case.expect else ""


def check_query(case: Case, host: str, port: int) -> Result:
    """Send the case's query and compare; with `retry`, re-send (bounded) until the reply passes."""
    deadline = time.monotonic() + case.retry
    while True:
        res = _check_query_once(case, host, port)
        if res.status == PASS or time.monotonic() >= deadline:
            return res
        time.sleep(0.2)


def _check_query_once(case: Case, host: str, port: int) -> Result:
    """Send the case's query and compare; never raises."""
    assert case.query is not None and case.expect is not None
    res = Result(case, FAIL, expected=expected_text(case))
    try:
        msg = send(case.query, host, port)
    except dns.exception.Timeout:
        res.got = "no reply (timeout)"
        res.status = PASS if case.expect.timeout else FAIL
        return res
    except Exception as exc:  # garbage replies, refused TCP: a finding, not a crash
        res.got, res.status = f"error: {type(exc).__name__}: {exc}", FAIL
        return res
    res.got = reply_summary(msg)
    if case.expect.timeout:
        res.detail = "a reply came, none was expected"
        return res
    problems = case.expect.check(msg)
    res.status = FAIL if problems else PASS
    res.detail = "; ".join(problems)
    return res


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are statuses, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def check_http(case: Case, env: Environment) -> Result:
    """GET the endpoint (bounded retries for ~5 s while the status differs: readiness may lag the DNS
    answers) and compare status, body and contained texts."""
    h = case.http
    assert h is not None
    res = Result(case, FAIL, expected=expected_text(case))
    if h.port not in env.values:
        res.status, res.detail = ERROR, f"the Corefile has no @{h.port}@"
        return res
    url = f"http://127.0.0.1:{env.values[h.port]}{h.path}"
    deadline = time.monotonic() + 5.0
    while True:
        try:
            status, body = http_get(url)
        except OSError as exc:
            status, body = 0, f"error: {exc}"
        if status == h.status or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    res.got = f"HTTP {status} ({len(body)} bytes)" if len(body) > 40 else f"HTTP {status} {body.strip()!r}"
    problems = []
    if status != h.status:
        problems.append(f"status {status}, expected {h.status}")
    if h.body is not None and body.strip() != env.fill(h.body):
        problems.append(f"body {body.strip()[:200]!r}, expected {env.fill(h.body)!r}")
    problems += [f"body lacks {env.fill(c)!r}" for c in h.contains if env.fill(c) not in body]
    problems += [f"no sample {env.fill(m)}" for m in h.metrics if not metric_present(env.fill(m), body)]
    res.status = FAIL if problems else PASS
    res.detail = "; ".join(problems)
    return res


def check_log(case: Case, env: Environment, res: Result) -> None:
    """The server's stdout or stderr must contain `case.log` (bounded wait: logs may lag the answer)."""
    want = env.fill(case.log)
    deadline = time.monotonic() + 5.0
    while True:
        text = env.output_text()
        if want in text:
            return
        if time.monotonic() > deadline:
            res.status, res.detail = FAIL, f"server output lacks {want!r}"
            return
        time.sleep(0.2)


class Group:
    """Cases that share a Corefile: the resources they need and the order they run in."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases
        self.first = cases[0]


class Target:
    """Where cases run. `run_group` yields one Result per case."""

    jobs = 1

    def applicable(self, case: Case) -> str:
        """Empty if the case can run here, else the reason to skip."""
        return ""

    def run_group(self, group: Group) -> list[Result]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ServerTarget(Target):
    """A DNS server someone else started, serving the fixture cluster as zone cluster.local."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def applicable(self, case: Case) -> str:
        if not case.server or case.http is not None:
            return "needs --binary (own Corefile)"
        if case.upstream or case.steps:
            return "needs the suite's own upstream (--binary)"
        return ""

    def run_group(self, group: Group) -> list[Result]:
        out = []
        for case in group.cases:
            t0 = time.monotonic()
            r = check_query(case, self.host, self.port)
            r.seconds = time.monotonic() - t0
            out.append(r)
        return out


class Environment:
    """One group's world: ports, upstreams, working directory, and the binary's process."""

    def __init__(self, target: BinaryTarget, group: Group) -> None:
        self.target = target
        self.case = case = group.first
        self.private_api = any(c.mutates_cluster for c in group.cases)  # changes stay in this group
        self.api: Any = None
        self.dir = Path(tempfile.mkdtemp(prefix="conformance-"))
        self.values: dict[str, str] = {"DIR": str(self.dir), "CONF": str(self.dir / "Corefile")}
        self.upstreams: dict[int, Unbound] = {}
        self.proc: subprocess.Popen | None = None
        blob = "\n".join([case.corefile, *case.env.values(), *case.files.values()])
        try:
            for name in sorted(set(_PLACEHOLDER.findall(blob)) - set(self.values)):
                self.values[name] = self._value(name)
        except BaseException:
            self.close()  # upstreams or an API server already started must not outlive a failed setup
            raise

    def _value(self, name: str) -> str:
        if name in _PORT_NAMES:
            return str(free_port())
        if name == "DEAD":  # an address where nothing listens: UDP gets port unreachable, TCP a reset
            return f"127.0.0.1:{free_port()}"
        if name in ("UPSTREAM", "UPSTREAM2"):
            idx = 1 if name == "UPSTREAM" else 2
            u = Unbound(MAIN_ZONES if idx == 1 else SECOND_ZONES).start()
            self.upstreams[idx] = u
            return u.addr
        if name in ("UPSTREAM_DOH", "UPSTREAM_CA"):  # DNS over HTTPS on the main zones (upstream 3), its cert
            if 3 not in self.upstreams:
                self.upstreams[3] = Unbound(MAIN_ZONES, https=True).start()
            u = self.upstreams[3]
            return f"127.0.0.1:{u.https_port}" if name == "UPSTREAM_DOH" else u.cert_file
        if name == "KUBECONFIG":
            if not self.private_api:
                return self.target.kubeconfig()
            self.api = start_api()
            return str(self.api.write_kubeconfig(self.dir / "kubeconfig"))
        raise ValueError(f"unknown placeholder @{name}@")

    def fill(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(1), m.group(0)), text)

    @property
    def port(self) -> int:
        return int(self.values.get("PORT", "0"))

    def start(self) -> None:
        """Write the Corefile and extra files, start the binary (stdout/stderr to files)."""
        for rel, text in self.case.files.items():
            p = self.dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(self.fill(text))
        conf = self.dir / "Corefile"
        conf.write_text(self.fill(self.case.corefile))
        env = {**os.environ, **{k: self.fill(v) for k, v in self.case.env.items()}}
        self.out = open(self.dir / "stdout", "wb")  # noqa: SIM115 - closed in close()
        self.err = open(self.dir / "stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([*self.target.argv, "-conf", str(conf)], cwd=self.dir, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     start_new_session=True)

    def stderr_text(self) -> str:
        self.err.flush()
        return (self.dir / "stderr").read_text(errors="replace")

    def output_text(self) -> str:
        """stdout and stderr (CoreDNS logs to stdout, its fatal errors go to stderr)."""
        self.out.flush()
        return (self.dir / "stdout").read_text(errors="replace") + self.stderr_text()

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_ready(self) -> str:
        """Bounded wait until the server answers its readiness query; returns an error text or ''."""
        assert self.proc is not None
        probe = self.case.ready or Query(name=".", type="SOA", timeout=0.3)
        probe.timeout = min(probe.timeout, 0.5)
        deadline = time.monotonic() + START_TIMEOUT
        last = "no reply"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode}: {self.stderr_text().strip()[-500:]}"
            try:
                msg = send(probe, "127.0.0.1", self.port)
                rcode = dns.rcode.to_text(msg.rcode())
                if self.case.ready is None or rcode == self.case.ready_rcode:
                    return ""
                last = f"{probe.name} {probe.type} -> {rcode}"
            except dns.exception.Timeout:
                last = "no reply"
            except OSError as exc:
                last = str(exc)
                time.sleep(0.1)
            time.sleep(0.05)
        return f"not ready after {START_TIMEOUT:.0f}s ({last})"

    def step(self, kind: str, arg: Any) -> None:
        if kind == "sleep":
            time.sleep(arg)
        elif kind == "stop_upstream":
            self.upstreams[arg].stop()
        elif kind == "start_upstream":
            self.upstreams[arg].start()
        elif kind == "query":
            with contextlib.suppress(Exception):
                send(arg, "127.0.0.1", self.port)
        elif kind in ("api_apply", "api_delete"):
            if self.api is None:
                raise RuntimeError(f"{kind} needs a Corefile with @KUBECONFIG@")
            if kind == "api_apply":
                kube.apply(self.api.url, arg)
            else:
                kube.delete(self.api.url, arg["kind"], arg.get("namespace"), arg["name"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f:
                f.close()
        for u in self.upstreams.values():
            u.close()
        if self.api is not None:
            self.api.stop()
        if not self.target.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_api() -> Any:
    """The API test server with the fixture cluster, started (loopback, ephemeral port)."""
    from .apiserver import FIXTURE_CLUSTER, APIServer, load_objects

    api = APIServer(load_objects(FIXTURE_CLUSTER))
    api.start()
    return api


class BinaryTarget(Target):
    """Start `argv -conf FILE` per Corefile group; the API test server is shared and started on demand."""

    def __init__(self, command: str, jobs: int = 4, keep: bool = False) -> None:
        self.argv = shlex.split(command)
        if not self.argv or not (shutil.which(self.argv[0]) or os.path.exists(self.argv[0])):
            raise ValueError(f"binary not found: {command!r}")
        self.jobs = jobs
        self.keep = keep
        self._api: Any = None
        self._kubeconfig = ""
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="conformance-api-")

    def kubeconfig(self) -> str:
        """Start the API test server with the fixture cluster (once) and return a kubeconfig path."""
        with self._lock:
            if not self._kubeconfig:
                self._api = start_api()
                self._kubeconfig = str(self._api.write_kubeconfig(Path(self._dir) / "kubeconfig"))
            return self._kubeconfig

    def run_group(self, group: Group) -> list[Result]:
        t0 = time.monotonic()
        env: Environment | None = None
        try:
            for attempt in range(2):
                env = Environment(self, group)
                env.start()
                if group.first.exit is not None:
                    return [self._exit_case(env, group.first, t0)]
                err = env.wait_ready()
                if not err:
                    break
                # A free port taken by someone else between our check and the server's bind: new ports.
                if attempt == 0 and "in use" in err.lower():
                    env.close()
                    env = None
                    continue
                return [Result(c, ERROR, expected_text(c), f"server did not start: {err}") for c in group.cases]
            assert env is not None
            out = []
            for case in group.cases:
                t1 = time.monotonic()
                try:
                    for s in case.steps:
                        env.step(s.kind, s.arg)
                except Exception as exc:  # e.g. the API refused an object: this case's error, not the run's
                    r = Result(case, ERROR, expected_text(case), f"step failed: {type(exc).__name__}: {exc}")
                else:
                    r = check_http(case, env) if case.http else check_query(case, "127.0.0.1", env.port)
                    if case.log and r.status == PASS:
                        check_log(case, env, r)
                r.seconds = time.monotonic() - t1
                out.append(r)
            return out
        except Exception as exc:  # a broken environment fails its cases, not the run
            return [Result(c, ERROR, expected_text(c), f"environment: {type(exc).__name__}: {exc}")
                    for c in group.cases]
        finally:
            if env is not None:
                env.close()

    def _exit_case(self, env: Environment, case: Case, t0: float) -> Result:
        res = Result(case, FAIL, expected_text(case))
        code = env.wait_exit(START_TIMEOUT)
        stderr = env.stderr_text()
        want = env.fill(case.stderr)
        if code is None:
            res.got = "still running"
        else:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            res.got = f"exit {code}" + (f", stderr: {last!r}" if last else "")
            ok = code == case.exit and (not want or want in stderr)
            res.status = PASS if ok else FAIL
            if not ok and want and want not in stderr:
                res.detail = f"stderr lacks {want!r}"
        res.seconds = time.monotonic() - t0
        return res

    def close(self) -> None:
        if self._api is not None:
            self._api.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    required: tuple[str, ...] = DEFAULT_REQUIRED
    seconds: float = 0.0

    def failed_required(self) -> list[Result]:
        return [r for r in self.results if r.status in (FAIL, ERROR) and r.required(self.required)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def groups_of(cases: list[Case]) -> Iterator[Group]:
    """Consecutive-or-not cases with the same Corefile group, in first-appearance order."""
    by_key: dict[str, list[Case]] = {}
    for c in cases:
        by_key.setdefault(c.group_key(), []).append(c)
    for cs in by_key.values():
        yield Group(cs)


def run(cases: list[Case], target: Target, required: tuple[str, ...] = DEFAULT_REQUIRED,
        xfail: set[str] | None = None, progress: Callable[[Result], None] | None = None) -> Run:
    """Run every case; unreadable or inapplicable cases become error/skip results."""
    xfail = xfail or set()
    t0 = time.monotonic()
    results: dict[int, Result] = {}
    runnable: list[Case] = []
    for c in cases:
        reason = c.error or target.applicable(c)
        if c.error:
            results[id(c)] = Result(c, ERROR, detail=f"case file: {c.error}")
        elif reason:
            results[id(c)] = Result(c, SKIP, expected_text(c), detail=reason)
        else:
            runnable.append(c)
    lock = threading.Lock()

    def one(group: Group) -> None:
        for r in target.run_group(group):
            if r.case.id in xfail or r.case.name in xfail:
                r.status = XPASS if r.status == PASS else XFAIL if r.status in (FAIL, ERROR) else r.status
            with lock:
                results[id(r.case)] = r
                if progress:
                    progress(r)

    groups = list(groups_of(runnable))
    # Slow groups (sleeps) first so they overlap with the rest.
    groups.sort(key=lambda g: -sum(s.arg for c in g.cases for s in c.steps if s.kind == "sleep"))
    with ThreadPoolExecutor(max_workers=max(1, target.jobs)) as pool:
        for f in [pool.submit(one, g) for g in groups]:
            f.result()
    ordered = [results[id(c)] for c in cases if id(c) in results]
    return Run(ordered, required, time.monotonic() - t0)
