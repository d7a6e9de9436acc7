"""Helpers for the live-configuration tests: file-backed servers, lossless probes, kubelet mounts.

A `Prober` sends queries one after another over real loopback sockets while a test reloads the
server, and counts every query sent, answered and lost (a timeout counts as lost: loopback UDP does
not drop, so any timeout is a query the server missed).
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import trio

from pycoredns.embed import serve
from pycoredns.metrics import REGISTRY

_stamp = itertools.count()


def serve_file(path: str, **kw):
    """A server on the Corefile at `path`, read through the CLI's loader as `-conf path` would."""
    return serve(conf=path, **kw)


def write(path: str, text: str) -> None:
    """Replace a file atomically (a poller never sees half a file)."""
    tmp = f"{path}.tmp{next(_stamp)}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def configmap(directory: str, files: dict[str, str]) -> None:
    """Build or update a kubelet ConfigMap mount: `..<ts>/` dirs, `..data` -> one of them, and
    `KEY -> ..data/KEY` links; an update swaps `..data` atomically (rename of a new symlink)."""
    os.makedirs(directory, exist_ok=True)
    ts = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.") + f"{next(_stamp):09d}"
    payload = os.path.join(directory, ts)
    os.mkdir(payload)
    for key, text in files.items():
        with open(os.path.join(payload, key), "w", encoding="utf-8") as f:
            f.write(text)
    data = os.path.join(directory, "..data")
    old = os.readlink(data) if os.path.islink(data) else None
    tmp = os.path.join(directory, "..data_tmp")
    os.symlink(ts, tmp)
    os.rename(tmp, data)
    for key in files:
        link = os.path.join(directory, key)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", key), link)
    if old is not None:
        old_dir = os.path.join(directory, old)
        for name in os.listdir(old_dir):
            os.unlink(os.path.join(old_dir, name))
        os.rmdir(old_dir)


class Prober:
    """Sequential queries until stopped (bounded by `limit`); counts sent, answered, lost."""

    def __init__(self, port: int, name: str = "version.bind", rdtype: str = "TXT", rdclass: str = "CH", *,
                 tcp: bool = False, timeout: float = 1.0, limit: int = 20000) -> None:
        self.port = port
        self.name, self.rdtype, self.rdclass = name, rdtype, rdclass
        self.tcp = tcp
        self.timeout = timeout
        self.limit = limit
        self.sent = self.answered = self.lost = 0
        self.answers: list[str] = []  # answer texts, consecutive duplicates folded
        self.stop = trio.Event()

    def __repr__(self) -> str:
        return f"Prober(sent={self.sent}, answered={self.answered}, lost={self.lost}, answers={self.answers})"

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        started = False
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        with sock:
            while not self.stop.is_set() and self.sent < self.limit:
                reply = await (self._tcp() if self.tcp else self._udp(sock))
                if reply is None:
                    self.lost += 1
                else:
                    self.answered += 1
                    self._note(reply)
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(0)

    async def _udp(self, sock) -> dns.message.Message | None:
        q = dns.message.make_query(self.name, self.rdtype, self.rdclass)
        q.id = random.randrange(65536)
        await sock.sendto(q.to_wire(), ("127.0.0.1", self.port))
        self.sent += 1
        with trio.move_on_after(self.timeout):
            while True:
                data = await sock.recv(65535)
                try:
                    r = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue
                if r.id == q.id:
                    return r
        return None

    async def _tcp(self) -> dns.message.Message | None:
        q = dns.message.make_query(self.name, self.rdtype, self.rdclass)
        self.sent += 1
        try:
            return await dns.asyncquery.tcp(q, "127.0.0.1", port=self.port, timeout=self.timeout)
        except (OSError, dns.exception.DNSException, EOFError):
            return None

    def _note(self, r: dns.message.Message) -> None:
        if r.answer:
            text = " ".join(rd.to_text() for rrset in r.answer for rd in rrset)
        else:
            text = dns.rcode.to_text(r.rcode())
        if not self.answers or self.answers[-1] != text:
            self.answers.append(text)


@asynccontextmanager
async def probing(*probers: Prober) -> AsyncIterator[tuple[Prober, ...]]:
    """Run probers in the background while the body reloads; they stop (and finish) on exit."""
    async with trio.open_nursery() as n:
        for p in probers:
            await n.start(p.run)
        try:
            yield probers
            for p in probers:  # some queries after the last swap, then stop
                if p.stop.is_set():
                    continue
                target = p.sent + 20
                with trio.move_on_after(5):
                    while p.sent < target:
                        await trio.sleep(0.005)
        finally:
            for p in probers:
                p.stop.set()


def txt(version: str) -> str:
    """How a chaos `version.bind` answer reads in `Prober.answers`."""
    return f'"{version}"'


class LogLines(logging.Handler):
    """The pycoredns log as CoreDNS prints it (`[LEVEL] message`), for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def has(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)


def capture_logs():
    """Generator for a `logs` fixture: the `pycoredns` logger's lines (it does not propagate, so
    caplog misses it). Use as `@pytest.fixture def logs(): yield from capture_logs()`."""
    handler = LogLines()
    logger = logging.getLogger("pycoredns")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def failed_count() -> float:
    """coredns_reload_failed_total now."""
    return REGISTRY.metrics["coredns_reload_failed_total"].get()


def version_hashes() -> list[str]:
    """The hashes coredns_reload_version_info reports."""
    return [labels[1] for labels in REGISTRY.metrics["coredns_reload_version_info"].values]


def main_with_extras(extra_dir: str, version: str = "v1") -> str:
    """A main Corefile with a reloading `(common)`, a chaos block answering `version`, and an import
    of `extra_dir/*.conf` (the extra-configs layout)."""
    return (f"(common) {{\n errors\n reload 2s 0\n}}\n"
            f".:0 {{\n import common\n chaos {version}\n}}\n"
            f"import {extra_dir}/*.conf\n")
