"""A handler harness for plugin tests: build requests, record replies, run a handler (or a chain)
through both paths and check that they agree.

A handler has two ways to serve a query (DEVELOPERS.md, "The handler contract"): `serve_fast`, which
answers, returns PENDING and completes later through `w.done`, or returns None; and `async serve_dns`.
They must give the client the same reply and the caller the same rcode or error. This module runs
both and compares:

    from pycoredns.testing import chain, make_request, run_both, Static

    async def test_my_plugin():
        result = await run_both(lambda: chain(MyPlugin(), Static(answer_a("192.0.2.1"))),
                                make_request("example.org.", "A"))
        assert result.rcode == 0 and result.message.rr[0].rdata == ...

`run_both` takes a factory so that each path gets a fresh chain (caches and counters do not leak from
one run into the other). The stand-ins `Static`, `Fails` and `Later` play the rest of the chain: a
synchronous answer, a PluginError, and an answer that arrives later by continuation (PENDING).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from dnslib import DNSRecord

from . import wire
from .exceptions import PluginError
from .handler import PENDING, Handler, SyncHandler, WaitingHandler
from .request import Request, ResponseWriter, client_write
from .timers import call_later
from .wire import Reply

__all__ = [
    "Fails",
    "Later",
    "RecordingWriter",
    "Result",
    "Static",
    "answer_a",
    "chain",
    "make_request",
    "run_both",
    "run_fast",
    "run_slow",
]

DONE_TIMEOUT = 10.0  # a PENDING query that never completes fails the test instead of hanging it


def make_request(name: str, qtype: str | int = "A", *, qclass: int = 1, qid: int = 0x1234, rd: bool = True,
                 do: bool = False, bufsize: int | None = None, proto: str = "udp",
                 remote: tuple[str, int] = ("127.0.0.1", 40000)) -> Request:
    """A query as the server would hand it to a chain (EDNS when `do` or `bufsize` is given)."""
    rtype = qtype if isinstance(qtype, int) else wire.type_value(qtype)
    if rtype is None:
        raise ValueError(f"unknown type {qtype!r}")
    edns = do or bufsize is not None
    flags = wire.RD if rd else 0
    data = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    data += wire.text_to_wire(name if name.endswith(".") else name + ".") + struct.pack(">HH", rtype, qclass)
    if edns:
        data += b"\x00" + struct.pack(">HHIH", 41, bufsize or 1232, 0x8000 if do else 0, 0)
    return Request(data, remote, proto)


def chain(*handlers: Handler) -> Handler:
    """Link handlers in order (the first one is the chain's head) and return the head."""
    for a, b in itertools.pairwise(handlers):
        a.next = b
    return handlers[0]


class RecordingWriter(ResponseWriter):
    """The client's end of the chain: keeps every reply and the completion of a PENDING query."""

    __slots__ = ("completed", "error", "rcode", "replies")

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[bytes] = []
        self.rcode: int | None = None
        self.error: BaseException | None = None
        self.completed = trio.Event()

    def write(self, reply: Reply) -> None:
        self.written = True
        self.replies.append(wire.to_bytes(reply))

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if self.completed.is_set():
            raise AssertionError(f"done() called twice (rcode {rcode}, {error!r})")
        self.rcode, self.error = rcode, error
        self.completed.set()


@dataclass
class Result:
    """What one path produced: the rcode (or the PluginError), the replies the client got, which path."""

    rcode: int
    error: PluginError | None
    replies: list[bytes] = field(default_factory=list)
    path: str = "fast"  # "fast", "pending" or "slow"

    @property
    def reply(self) -> bytes | None:
        """The one reply the client gets (the server's own for a not-written rcode), None if none."""
        return self.replies[0] if self.replies else None

    @property
    def message(self) -> DNSRecord:
        assert self.reply is not None, "no reply"
        return DNSRecord.parse(self.reply)

    def agrees_with(self, other: Result) -> bool:
        return (self.rcode == other.rcode and str(self.error) == str(other.error)
                and type(self.error) is type(other.error) and self.replies == other.replies)


def _result(req: Request, w: RecordingWriter, rc: int | None, error: BaseException | None, path: str) -> Result:
    if error is not None and not isinstance(error, PluginError):
        raise error  # a panic: let the test see the traceback
    if error is not None:
        rc = error.rcode
    assert rc is not None
    if len(w.replies) > 1:
        raise AssertionError(f"{len(w.replies)} replies written for one query")
    replies = list(w.replies)
    if not replies and not client_write(rc):
        replies.append(req.empty_reply(rc))  # what the server writes for a not-written rcode
    return Result(rc, error, replies, path)


async def run_fast(handler: Handler, req: Request) -> Result:
    """The server's way: `serve_fast`; on PENDING wait for `done`; on None run `serve_dns`."""
    w = RecordingWriter()
    try:
        rc = handler.serve_fast(req, w)
    except Exception as e:
        return _result(req, w, None, e, "fast")
    if rc is PENDING:
        with trio.fail_after(DONE_TIMEOUT):
            await w.completed.wait()
        return _result(req, w, w.rcode, w.error, "pending")
    if rc is None:
        if w.written:
            raise AssertionError("serve_fast returned None after writing")
        return await run_slow(handler, req)
    if w.completed.is_set():
        raise AssertionError("serve_fast returned an rcode and also called done()")
    return _result(req, w, rc, None, "fast")


async def run_slow(handler: Handler, req: Request) -> Result:
    """`serve_dns` only (the path self-lookups and awaiting callers take)."""
    w = RecordingWriter()
    try:
        with trio.fail_after(DONE_TIMEOUT):
            rc = await handler.serve_dns(req, w)
    except Exception as e:
        return _result(req, w, None, e, "slow")
    if w.completed.is_set():
        raise AssertionError("serve_dns completed through done() instead of returning")
    return _result(req, w, rc, None, "slow")


async def run_both(make: Handler | Callable[[], Handler], req: Request | Callable[[], Request]) -> Result:
    """Run the fast path (with its PENDING or slow fallback) and `serve_dns`, each on a fresh chain from
    `make` when it is a factory, and assert that rcode, error and reply bytes agree. Returns the
    fast path's result."""
    fresh = make if not isinstance(make, Handler) else (lambda: make)
    new_req = req if not isinstance(req, Request) else (lambda: _copy(req))
    fast = await run_fast(fresh(), new_req())
    slow = await run_slow(fresh(), new_req())
    if not fast.agrees_with(slow):
        raise AssertionError(f"the paths disagree:\n  fast ({fast.path}): {fast}\n  slow: {slow}")
    return fast


def _copy(req: Request) -> Request:
    r = Request(req.wire, req.remote, req.proto, req.local, req.listener)
    r.zone = req.zone
    return r


# -- stand-ins for the rest of a chain -----------------------------------------------------------------


def answer_a(address: str, ttl: int = 300) -> Callable[[Request], bytes]:
    """A reply builder for `Static`/`Later`: one A record for the question's name."""
    import socket

    rdata = socket.inet_aton(address)

    def build(req: Request) -> bytes:
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, ttl, 4) + rdata
        return req.reply_header(an=1) + req.question + rr

    return build


class Static(SyncHandler):
    """Answers every query synchronously with `build(req)` (rcode 0)."""

    name = "static"

    def __init__(self, build: Callable[[Request], bytes]) -> None:
        self.build = build
        self.calls = 0

    def handle(self, req: Request, w: ResponseWriter) -> int:
        self.calls += 1
        w.write(self.build(req))
        return wire.NOERROR


class Fails(SyncHandler):
    """Raises PluginError(rcode, text) for every query."""

    name = "fails"

    def __init__(self, rcode: int = wire.SERVFAIL, text: str = "upstream down") -> None:
        self.rcode = rcode
        self.text = text

    def handle(self, req: Request, w: ResponseWriter) -> int:
        raise PluginError(self.rcode, self.text)


class Later(WaitingHandler):
    """Answers by continuation after `delay` seconds (PENDING on the fast path), as forward does."""

    name = "later"

    def __init__(self, build: Callable[[Request], bytes] | None, delay: float = 0.01,
                 error: PluginError | None = None) -> None:
        self.build = build
        self.delay = delay
        self.error = error
        self.calls = 0

    def start(self, req: Request, w: ResponseWriter) -> int:
        self.calls += 1

        def complete() -> None:
            if self.error is not None:
                w.done(self.error.rcode, self.error)
                return
            assert self.build is not None
            w.write(self.build(req))
            w.done(wire.NOERROR)

        call_later(self.delay, complete)
        return PENDING  # type: ignore[no-any-return]
