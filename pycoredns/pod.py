"""One pod, one view: with `-workers N` every worker answers the HTTP endpoints for all N.

The workers share the HTTP ports with SO_REUSEPORT, so a scrape or a probe reaches one of them at
random. Each worker therefore also listens on an internal Unix socket in the abstract namespace
(`\\0pycoredns-<pod id>-<worker index>`: no file, gone with the process) where a sibling can
ask for its local view of one route. The worker that got the HTTP request asks every sibling
(bounded by `ASK_TIMEOUT`) and combines:

- `/metrics`: the registries of all workers as one exposition (`pycoredns.metrics.merge`: counters
  and histograms summed, gauges per `GAUGE_MODES`); a worker that does not answer is left out. A
  worker that exits gracefully hands its counters and histograms to a sibling (`hand_over`), so a
  replaced worker does not make the pod's totals drop.
- any other route (`/health`, `/ready`, ...): 200 with the local body when every worker says 200,
  else the first failing worker's answer (a worker that does not answer counts as 503), so the
  probes reflect every worker.

What stays per worker (by design, as separate processes): the cache, the kubernetes watch and its
index, forward's connections and health checks, reload (each worker reloads itself).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from . import metrics

Route = Callable[[str, str], Awaitable[tuple[int, str, bytes]] | tuple[int, str, bytes]]
ASK_TIMEOUT = 2.0
METRICS_PATH = "/metrics"
_MAX_REPLY = 64 << 20


class Pod:
    """Worker `index` of `count` of the pod `pod_id`: the supervisor's pid and a random token (pids
    repeat across PID namespaces that share a network namespace, where abstract names live: two
    containers of one pod, or a surging hostNetwork DaemonSet, both have a supervisor with pid 1)."""

    def __init__(self, pod_id: str, index: int, count: int,
                 registry: metrics.Registry = metrics.REGISTRY) -> None:
        self.pod_id = pod_id
        self.index = index
        self.count = count
        self.registry = registry
        self.local: dict[tuple[str, str], Route] = {}  # (address, path) -> this worker's own route
        self.retired: dict[str, dict[str, Any]] = {}  # counters and histograms of exited workers (hand_over)

    def address(self, index: int) -> bytes:
        return f"\0pycoredns-{self.pod_id}-{index}".encode()

    # -- the HTTP side -------------------------------------------------------------------------------
    def route(self, addr: str, path: str, fn: Route) -> Route:
        """`fn` (this worker's route) wrapped to answer for the whole pod."""
        self.local[(addr, path)] = fn

        async def pod_route(method: str, target: str) -> tuple[int, str, bytes]:
            answers = await self.ask_all(addr, path, method, target)
            if path == METRICS_PATH:
                return self._metrics(answers)
            return self._probe(answers)

        return pod_route

    def _metrics(self, answers: list[dict[str, Any] | None]) -> tuple[int, str, bytes]:
        try:
            live = [_snapshot(a.get("snapshot")) if a else None for a in answers]
            retired = [r for a in answers if a for r in a.get("retired", []) if _snapshot(r)]
            body = metrics.merge(live + retired)
        except Exception as e:  # a malformed sibling answer: an error page, as a failing collector gives
            return 500, "text/plain; charset=utf-8", f"An error has occurred while serving metrics:\n\n{e}\n".encode()
        return 200, "text/plain; version=0.0.4; charset=utf-8", body.encode()

    def _probe(self, answers: list[dict[str, Any] | None]) -> tuple[int, str, bytes]:
        replies = [_reply(a) for a in answers]
        for i, r in enumerate(replies):
            if r is None:
                return 503, "text/plain; charset=utf-8", f"worker {i} did not answer\n".encode()
            if r[0] != 200:
                return r
        own = replies[self.index]
        assert own is not None
        return own

    async def ask_all(self, addr: str, path: str, method: str, target: str) -> list[dict[str, Any] | None]:
        """Every worker's local answer (this one's computed here), None for those that did not answer."""
        answers: list[dict[str, Any] | None] = [None] * self.count
        request = {"addr": addr, "path": path, "method": method, "target": target}

        async def ask(i: int) -> None:
            if i == self.index:
                answers[i] = await self.answer(request)
            else:
                with trio.move_on_after(ASK_TIMEOUT):
                    answers[i] = await self._ask(i, request)

        async with trio.open_nursery() as n:
            for i in range(self.count):
                n.start_soon(ask, i)
        return answers

    async def _ask(self, index: int, request: dict[str, Any]) -> dict[str, Any] | None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            try:
                await sock.connect(self.address(index))
                await sock.send(json.dumps(request).encode() + b"\n")
                sock.shutdown(socket.SHUT_WR)
                answer = json.loads(await _read_all(sock))
            except (OSError, ValueError):
                return None
            return answer if isinstance(answer, dict) else None

    def hand_over(self, timeout: float = ASK_TIMEOUT) -> bool:
        """After this worker stopped (outside trio): give its counters and histograms, and those it
        held for earlier workers, to a live sibling, so the pod's totals do not drop when a worker is
        replaced (a drop reads as a counter reset to Prometheus). Gauges go with the worker. False
        when no sibling took them (the whole pod is stopping)."""
        leaving: dict[str, dict[str, Any]] = {}
        metrics.fold(leaving, self.retired)
        metrics.fold(leaving, self.registry.snapshot())
        payload = json.dumps({"retire": leaving}).encode()
        deadline = time.monotonic() + timeout
        for i in (j for j in range(self.count) if j != self.index):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(remaining)
                    s.connect(self.address(i))
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    if json.loads(s.makefile("rb").read() or b"{}").get("ok"):
                        return True
            except (OSError, ValueError):
                continue
        return False

    # -- the internal side -----------------------------------------------------------------------------
    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """This worker's own view of one route."""
        if "retire" in request:  # a sibling exiting gracefully hands over its counts
            metrics.fold(self.retired, request["retire"])
            return {"ok": True}
        if request["path"] == METRICS_PATH:
            return {"snapshot": self.registry.snapshot(), "retired": [self.retired] if self.retired else []}
        fn = self.local.get((request["addr"], request["path"]))
        if fn is None:
            return {"status": 404, "ctype": "text/plain; charset=utf-8", "body": "404 page not found\n"}
        result = fn(request["method"], request["target"])
        if not isinstance(result, tuple):
            result = await result
        status, ctype, body = result
        return {"status": status, "ctype": ctype, "body": body.decode(errors="replace")}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer the siblings until cancelled."""
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with listener:
            await listener.bind(self.address(self.index))
            listener.listen(64)
            task_status.started()
            async with trio.open_nursery() as n:
                while True:
                    conn, _ = await listener.accept()
                    n.start_soon(self._serve_one, conn)

    async def _serve_one(self, conn: trio.socket.SocketType) -> None:
        with conn:
            try:
                with trio.move_on_after(ASK_TIMEOUT * 2):
                    request = json.loads(await _read_all(conn))
                    reply = json.dumps(await self.answer(request)).encode()
                    await _send_all(conn, reply)
            except Exception:  # a broken request or route: the asker counts this worker as not answering
                pass


def _snapshot(data: Any) -> dict[str, Any] | None:
    """A worker's registry snapshot, or None when it sent something else."""
    return data if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()) else None


def _reply(answer: dict[str, Any] | None) -> tuple[int, str, bytes] | None:
    """(status, content type, body) of a worker's answer to a route; None if it gave none (or garbage)."""
    try:
        return int(answer["status"]), str(answer["ctype"]), str(answer["body"]).encode()  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


async def _read_all(sock: trio.socket.SocketType) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < _MAX_REPLY:
        chunk = await sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = await sock.send(view)
        view = view[sent:]
