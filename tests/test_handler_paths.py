"""The handler contract through `pycoredns.testing`: every writer-wrapping and planning plugin gives the
same reply, rcode and error on the fast path, on the PENDING path (the chain below completes by
continuation, as forward does) and on `serve_dns`; and the base classes derive both paths."""

from __future__ import annotations

import logging

import pytest
import trio
from pycoredns.plugins.cache import Cache
from pycoredns.plugins.errors import Errors
from pycoredns.plugins.log import COMMON, Log, Rule
from pycoredns.plugins.minimal import Minimal
from pycoredns.plugins.prometheus import Metrics
from pycoredns.plugins.rewrite import Rewrite
from pycoredns.plugins.rewrite.rules import new_rule

from pycoredns import response, wire
from pycoredns.plugin import PENDING, Handler, PluginError, SyncHandler, Wrapper, WrapperHandler
from pycoredns.testing import Fails, Later, RecordingWriter, Static, answer_a, chain, make_request, run_both, run_fast

ALL = {response.Class.SUCCESS, response.Class.DENIAL, response.Class.ERROR}


def _cache() -> Cache:
    c = Cache()
    c.finish()
    return c


WRAPPERS = {
    "log": lambda: Log([Rule(["."], COMMON, ALL)]),
    "errors": lambda: Errors([], lambda *a: True),
    "minimal": Minimal,
    "prometheus": lambda: Metrics(["."], "dns://:53"),
    "cache": _cache,
    "rewrite": lambda: Rewrite([new_rule(["name", "exact", "alias.example.org.", "q.example.org."])]),
}
BELOW = {
    "sync": lambda: Static(answer_a("192.0.2.1")),
    "pending": lambda: Later(answer_a("192.0.2.1")),
    "sync-error": lambda: Fails(wire.SERVFAIL, "upstream down"),
    "pending-error": lambda: Later(None, error=PluginError(wire.SERVFAIL, "upstream down")),
}


@pytest.mark.parametrize("below", sorted(BELOW))
@pytest.mark.parametrize("plugin", sorted(WRAPPERS))
async def test_paths_agree(plugin: str, below: str) -> None:
    for name in ("q.example.org.", "alias.example.org."):
        result = await run_both(lambda: chain(WRAPPERS[plugin](), BELOW[below]()), make_request(name, "A"))
        assert result.path == ("pending" if below.startswith("pending") else "fast")
        if below.endswith("error"):
            assert result.rcode == wire.SERVFAIL
            if plugin != "errors":
                assert str(result.error) == "upstream down"  # passed up; errors reports it and returns the rcode
            continue
        assert result.rcode == 0
        rr = result.message.rr
        assert [str(r.rdata) for r in rr] == ["192.0.2.1"]
        assert str(result.message.q.qname) == name  # rewrite restores the client's question


async def test_log_line_written_once_on_the_pending_path() -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "q.example.org." in record.getMessage():
                lines.append(record.getMessage())

    keep = Keep()
    logging.getLogger("pycoredns").addHandler(keep)
    try:
        result = await run_fast(chain(WRAPPERS["log"](), Later(answer_a("192.0.2.1"))),
                                make_request("q.example.org.", "A"))
    finally:
        logging.getLogger("pycoredns").removeHandler(keep)
    assert result.path == "pending"
    assert len(lines) == 1 and " NOERROR " in lines[0]


async def test_cache_miss_completes_by_continuation_and_the_next_query_hits() -> None:
    below = Later(answer_a("192.0.2.1"))
    c = chain(_cache(), below)
    first = await run_fast(c, make_request("q.example.org.", "A"))
    second = await run_fast(c, make_request("q.example.org.", "A"))
    assert (first.path, second.path) == ("pending", "fast")
    assert below.calls == 1  # the miss went down once; its reply was stored when the continuation wrote it
    assert first.message.rr[0].rdata == second.message.rr[0].rdata


async def test_base_classes_derive_both_paths() -> None:
    seen: list[tuple[int, str | None]] = []

    class Tag(Wrapper):
        __slots__ = ()

        def after(self, rcode: int, error: PluginError | None) -> int:
            seen.append((rcode, None if error is None else str(error)))
            return super().after(rcode, error)

    class Wrap(WrapperHandler):
        name = "wrap"

        def wrap(self, req, w):
            return req, Tag(w)

    class Leaf(SyncHandler):
        name = "leaf"

        def handle(self, req, w):
            return wire.REFUSED  # not written: the server writes it

    for below in (Leaf(), Later(answer_a("192.0.2.1"))):
        seen.clear()
        await run_both(lambda b=below: chain(Wrap(), b), make_request("q.example.org.", "A"))
        assert len(seen) == 2  # the after-hook ran once per path


async def test_writer_shortcut_and_after_on_error_only() -> None:
    """`WrapperHandler.writer` makes the writer per query on both paths (a class overriding `wrap` keeps
    its `wrap`); `after` runs on success unless the writer says `after_on_error_only`."""
    seen: list[tuple[str, int, str | None]] = []

    class Made(Wrapper):
        __slots__ = ("tag",)

        def __init__(self, inner, handler, req) -> None:
            super().__init__(inner)
            self.tag = handler.name

        def after(self, rcode: int, error: PluginError | None) -> int:
            seen.append((self.tag, rcode, None if error is None else str(error)))
            return super().after(rcode, error)

    class OnErrors(Made):
        __slots__ = ()
        after_on_error_only = True

    class Shortcut(WrapperHandler):
        name = "shortcut"
        writer = Made

    class ErrorsOnly(WrapperHandler):
        name = "errors-only"
        writer = OnErrors

    class OwnWrap(Shortcut):
        name = "own-wrap"

        def wrap(self, req, w):
            return None  # wins over the inherited `writer`

    class Mixin:
        def after(self, rcode: int, error: PluginError | None) -> int:
            return rcode

    class Plain(Wrapper):
        __slots__ = ()

    class Mixed(Mixin, Wrapper):
        __slots__ = ()

    class Below(OnErrors):
        __slots__ = ()

    assert Made.after_on_error_only is False and OnErrors.after_on_error_only is True
    assert Wrapper.after_on_error_only is True and Plain.after_on_error_only is True
    assert Mixed.after_on_error_only is False and Below.after_on_error_only is True
    for below in ("sync", "pending"):
        seen.clear()
        await run_both(lambda b=below: chain(Shortcut(), BELOW[b]()), make_request("q.example.org.", "A"))
        assert seen == [("shortcut", 0, None)] * 2  # once per path
        seen.clear()
        await run_both(lambda b=below: chain(OwnWrap(), BELOW[b]()), make_request("q.example.org.", "A"))
        assert seen == []
    for below in ("sync", "pending", "sync-error", "pending-error"):
        seen.clear()
        await run_both(lambda b=below: chain(ErrorsOnly(), BELOW[b]()), make_request("q.example.org.", "A"))
        assert seen == ([("errors-only", wire.SERVFAIL, "upstream down")] * 2 if below.endswith("error") else [])


async def test_a_legacy_async_handler_below_runs_in_a_task_of_its_own() -> None:
    """A plugin with only `async serve_dns`: the handler above turns its None into PENDING (next_continue)."""

    class Awaits(Handler):
        name = "awaits"

        async def serve_dns(self, req, w):
            await trio.sleep(0.01)
            w.write(answer_a("192.0.2.7")(req))
            return 0

    w = RecordingWriter()
    head = chain(WRAPPERS["errors"](), Awaits())
    assert head.serve_fast(make_request("q.example.org.", "A"), w) is PENDING
    with trio.fail_after(5):
        await w.completed.wait()
    assert w.rcode == 0 and len(w.replies) == 1


async def test_autopath_walks_the_search_path_by_continuation() -> None:
    """Each candidate waits (PENDING) below autopath; the walk resumes from each completion, and both
    paths give the CNAME to the first candidate that exists."""
    from pycoredns.plugins.autopath import AutoPath

    class Exists(Later):
        """Answers by continuation: NXDOMAIN except for names under b.example.org."""

        def start(self, req, w):
            ok = req.name.endswith(".b.example.org.")
            self.build = answer_a("192.0.2.5") if ok else (lambda r: r.empty_reply(wire.NXDOMAIN))
            return super().start(req, w)

    def make() -> Handler:
        return chain(AutoPath(["example.org."], ["a.example.org.", "b.example.org.", ""], "dns://:53"), Exists(None))

    result = await run_both(make, make_request("host.a.example.org.", "A"))
    assert result.path == "pending" and result.rcode == 0
    rr = result.message.rr
    assert str(rr[0].rname) == "host.a.example.org." and str(rr[0].rdata) == "host.b.example.org."
    assert str(rr[1].rdata) == "192.0.2.5"
