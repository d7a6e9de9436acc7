"""`ObserverHandler` (errors, prometheus): on the server's own writer they make no writer per query and
observe from the writer's `done`; every way a query ends is observed exactly as with the writer made
per query (the path they take below another wrapper's writer)."""

from __future__ import annotations

import pytest
import trio
from conftest import query, running
from prom_helpers import samples

from pycoredns import wire
from pycoredns.metrics import REGISTRY
from pycoredns.plugin import (
    PENDING,
    Handler,
    ObserverHandler,
    PluginError,
    Request,
    ResponseWriter,
    SyncHandler,
    Wrapper,
    WrapperHandler,
)
from pycoredns.testing import Fails, Later, Static, answer_a

A = answer_a("192.0.2.1")


class DoneFirst(SyncHandler):
    """Completes the query (write, `w.done`) before returning PENDING: the observers above register
    afterwards, and still see it."""

    name = "donefirst"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        w.write(A(req))
        w.done(wire.NOERROR)
        return PENDING  # type: ignore[no-any-return]


class Twice(SyncHandler):
    """Writes two replies: the client gets the first, the metrics count both (size of both, rcode of
    the last), as a recorder per query counted them."""

    name = "twice"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        w.write(A(req))
        w.write(req.empty_reply(wire.NXDOMAIN))
        return wire.NOERROR


class NotWritten(SyncHandler):
    """Returns a "not written" rcode without an error: the server writes it."""

    name = "notwritten"

    def handle(self, req: Request, w: ResponseWriter) -> int:
        return wire.SERVFAIL


class Awaits(Handler):
    """Needs an await (`serve_fast` returns None): the rest of the chain runs in a task."""

    name = "awaits"

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        await trio.sleep(0)
        w.write(A(req))
        return wire.NOERROR


BELOW = {
    "static": lambda: Static(A),
    "later": lambda: Later(A),
    "fails": lambda: Fails(wire.SERVFAIL, "upstream down"),
    "fails later": lambda: Later(None, error=PluginError(wire.REFUSED, "refused later")),
    "not written": lambda: NotWritten(),
    "done first": DoneFirst,
    "twice": Twice,
    "awaits": Awaits,
}


class _Pass(Wrapper):
    __slots__ = ()


class PassOn(WrapperHandler):
    """A wrapper above prometheus: the observers below it get its writer, not the server's."""

    name = "passon"

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper]:
        return req, _Pass(w)


RUNS = iter(range(1_000_000))


async def observed(below: str, tcp: bool, wrapped: bool, log_lines: list[str]) -> tuple[list, dict, list]:
    """The rcodes and answers of two queries, their metric samples (but the durations' timings) and the
    lines logged, in a zone of its own (the registry is the process's)."""
    zone = f"z{next(RUNS)}.obs.test."
    start = len(log_lines)
    async with running(f"{zone} {{\n prometheus 127.0.0.1:0\n errors\n whoami\n}}\n") as srv:
        block = srv.instance.blocks[0]
        errors = next(h for h in block.handlers if h.name == "errors")
        errors.next = BELOW[below]()
        if wrapped:
            head = PassOn()
            head.next = block.chain
            block.chain = head
        rcodes = []
        for _ in range(2):
            r = await query(srv.port(), "q." + zone, "A", tcp=tcp)
            rcodes.append((r.rcode(), [str(rr.items) for rr in r.answer]))
    mine = {(name, labels - {("zone", zone)}): v for (name, labels), v in samples(REGISTRY.expose()).items()
            if ("zone", zone) in labels and "duration_seconds_bucket" not in name
            and "duration_seconds_sum" not in name}
    return rcodes, mine, [line.replace(zone, "ZONE") for line in log_lines[start:]]


@pytest.mark.parametrize("below", list(BELOW))
@pytest.mark.parametrize("tcp", [False, True])
async def test_observed_alike_on_the_server_writer_and_below_a_wrapper(below, tcp, log_lines):
    plain = await observed(below, tcp, False, log_lines)
    wrapped = await observed(below, tcp, True, log_lines)
    assert plain == wrapped
    rcodes, metrics, lines = plain
    assert sum(v for (name, _), v in metrics.items() if name == "coredns_dns_requests_total") == 2
    if below == "twice":
        assert rcodes[0][0] == wire.NOERROR and rcodes[0][1]
        assert any(name == "coredns_dns_responses_total" and ("rcode", "NXDOMAIN") in labels
                   for (name, labels) in metrics)
    if below.startswith("fails"):
        assert len(lines) == 2 and all(line.startswith("[ERROR] plugin/errors: ") for line in lines)
    elif below == "not written":
        assert lines == [] and all(rc == wire.SERVFAIL for rc, _ in rcodes)
    else:
        assert lines == [] and all(rc == wire.NOERROR and answer for rc, answer in rcodes)


def test_observer_defaults_and_clock() -> None:
    """A Python function as `clock` is not bound as a method; the writer made per query follows
    `observe_errors_only`."""
    seen: list[object] = []

    class Timed(ObserverHandler):
        name = "timed"

        def clock() -> int:  # type: ignore[misc]
            return 7

        def observe(self, req, w, rcode, error, started):  # type: ignore[no-untyped-def]
            seen.append(started)
            return super().observe(req, w, rcode, error, started)

    class FailuresOnly(ObserverHandler):
        name = "failures"
        observe_errors_only = True

    assert Timed.clock() == 7 and Timed().clock() == 7
    assert Timed.writer.after_on_error_only is False and FailuresOnly.writer.after_on_error_only is True
    assert ObserverHandler.clock is None
