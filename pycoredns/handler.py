"""The chain link: `Handler`, its three shapes, and the outcomes of serving a query.

A handler serves a query in one of three ways (DEVELOPERS.md, "The handler contract"):

- `serve_fast(req, w)` returns an rcode: done without waiting;
- it returns `PENDING`: the handler took the query over and will complete it later, from a callback
  (an upstream reply, a deadline), by writing through `w` and calling `w.done(rcode, error)` once;
- it returns `None`: it needs an `await`; the caller runs `serve_dns` in a task instead.

`async serve_dns` stays the whole contract for plugins that prefer to await. The three base classes
below derive both paths from one piece of logic:

- `SyncHandler`: leaves that never wait (`handle`);
- `WrapperHandler`: handlers that wrap the writer and post-process when the query completes
  (`wrap` + `Wrapper.after`), whichever way it completes;
- `WaitingHandler`: plan-then-maybe-wait handlers (`start`, which may return `PENDING`);
- `ObserverHandler`: wrappers that pass every query on unchanged and only look at how it ended
  (`observe`): on the server's own writer no writer object per query (errors, prometheus).

Plugins import these through `pycoredns.plugin`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from functools import partial
from types import FunctionType
from typing import Any, ClassVar

import trio

from . import log, wire
from .exceptions import PluginError
from .request import NOT_WRITTEN, Request, ResponseWriter, WriterWrapper, client_write
from .wire import Reply

__all__ = [
    "NEXT",
    "NOT_WRITTEN",
    "PENDING",
    "Handler",
    "ObserverHandler",
    "SyncHandler",
    "WaitingHandler",
    "Wrapper",
    "WrapperHandler",
    "await_pending",
    "client_write",
    "complete",
    "joined",
    "observed",
    "run_slow",
    "self_lookup",
    "self_lookup_all",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEXT: Any = _Sentinel("NEXT")
"""What `SyncHandler.handle` returns to pass the query on."""

PENDING: Any = _Sentinel("PENDING")
"""What `serve_fast` returns when the handler will complete the query later through `w.done`."""

Outcome = Any  # int | PENDING | None: what serve_fast returns (PENDING is a sentinel, not an int)


class Handler:
    """A link in a server block's chain. See DEVELOPERS.md for the contract."""

    name: ClassVar[str] = ""
    next: Handler | None = None

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, w)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        """Synchronous attempt: the rcode, PENDING (completed later through `w.done`), or None when the
        query needs `serve_dns` in a task (in that case nothing has been done or written)."""
        return None

    def no_next(self) -> PluginError:
        """The error of a chain that ends at this handler (CoreDNS's NextOrFailure text)."""
        return PluginError(wire.SERVFAIL, f"plugin/{self.name}: no next plugin found")

    async def next_or_failure(self, req: Request, w: ResponseWriter) -> int:
        if self.next is None:
            raise self.no_next()
        return await self.next.serve_dns(req, w)

    def next_fast(self, req: Request, w: ResponseWriter) -> int | None:
        """The next handler's `serve_fast`: an rcode, PENDING or None."""
        if self.next is None:
            raise self.no_next()
        return self.next.serve_fast(req, w)

    def next_continue(self, req: Request, w: ResponseWriter) -> int:
        """The next handler's fast path, never None: when the rest of the chain must await, it runs in a
        task of its own that completes through `w.done`, and this returns PENDING. The decision made
        so far (this handler's plan, its writer) is reused, not made again by a slow path from the top.

        `next_fast` is inlined: every forwarded cache miss passes here twice (cache, loop), and a
        Python frame is ~0.05-0.1 µs."""
        nxt = self.next
        if nxt is None:
            raise self.no_next()
        rc = nxt.serve_fast(req, w)
        if rc is None:
            run_slow(nxt, req, w)
            return PENDING  # type: ignore[no-any-return]
        return rc

    # Optional hooks.
    def ready(self) -> bool | None:
        """Readiness for the `ready` plugin: None when the plugin does not report readiness."""
        return None


# -- running a chain's slow path from the fast path -----------------------------------------------


def run_slow(handler: Handler, req: Request, w: ResponseWriter) -> None:
    """Run `handler.serve_dns(req, w)` in a task and complete the query through `w.done`.

    A trio system task: it needs no nursery from the caller (a socket callback has none), and the
    listeners count the query as in flight until `w.done`, so a reload's drain waits for it.
    """
    trio.lowlevel.spawn_system_task(_slow, handler, req, w, context=contextvars.copy_context())


async def _slow(handler: Handler, req: Request, w: ResponseWriter) -> None:
    error: Exception | None = None
    try:
        rc = await handler.serve_dns(req, w)
    except Exception as exc:  # PluginError or a panic: the writer chain below reports it
        rc, error = exc.rcode if isinstance(exc, PluginError) else wire.SERVFAIL, exc
    complete(w, rc, error)


def complete(w: ResponseWriter, rcode: int, error: BaseException | None = None) -> None:
    """`w.done(rcode, error)` from a callback or a system task: a bug in a writer's after-hook is logged
    instead of breaking the caller (an upstream socket's reader, the timer task, the trio run)."""
    try:
        w.done(rcode, error)
    except Exception as e:
        log.core.error(f"completing a query failed: {type(e).__name__}: {e}")


class _Waiter(WriterWrapper):
    """Turns a PENDING completion back into a return value for `serve_dns` (await_pending)."""

    __slots__ = ("error", "event", "rcode")

    def __init__(self, inner: ResponseWriter) -> None:
        self.written = False
        self.inner = inner
        self.event = trio.Event()
        self.rcode = wire.SERVFAIL
        self.error: BaseException | None = None

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        self.rcode, self.error = rcode, error
        self.event.set()


async def await_pending(start: Callable[[Request, ResponseWriter], Outcome], req: Request,
                        w: ResponseWriter) -> int:
    """`serve_dns` from a continuation-style `start`: run it and wait for its completion if PENDING."""
    waiter = _Waiter(w)
    rc = start(req, waiter)
    if rc is PENDING:
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.rcode
    if rc is None:
        raise RuntimeError("await_pending: start() returned None")
    return rc  # type: ignore[no-any-return]


# -- self-lookups by continuation ------------------------------------------------------------------


def self_lookup(sub: Request, w: ResponseWriter, then: Callable[[Reply | None], int]) -> int:
    """Look `sub` up through the server it came in on (its whole routing and chain again, as CoreDNS's
    self-lookups do: a CNAME target of kubernetes' ExternalName, template or rewrite) and finish the
    query with `then(reply)`, which writes through `w` and returns the rcode (or raises PluginError),
    as a handler does.

    Returns `then`'s rcode when the lookup completed at once (a cache hit, a local answer), else PENDING:
    `then` runs when the reply arrives (from forward's socket reader, a deadline, the task of a chain
    that awaits) and its outcome completes `w` through `w.done`. No task waits. `then` may itself
    return another `self_lookup(...)` (PENDING) to chain lookups. `reply` is None when `sub` came from
    no server (`sub.listener` is None). Build `sub` with `req.copy_with(qname=...)`: it carries the
    nesting depth, so a CNAME loop through the server ends in SERVFAIL after MAX_REENTRIES hops.
    """
    return _one(sub, w, then, False)


def _one(sub: Request, w: ResponseWriter, then: Callable[[Any], int], listed: bool) -> int:
    """One self-lookup; `then` gets the reply, or a list of it (`listed`: self_lookup_all of one)."""
    lst = sub.listener
    if lst is None:
        return then([None] if listed else None)
    box = _Lookup(w, then, listed)
    lst.resolve_then(sub, box.arrive)
    if box.arrived:
        return then([box.reply] if listed else box.reply)
    box.waiting = True
    return PENDING  # type: ignore[no-any-return]


class _Lookup:
    """The reply of one self-lookup (`_Lookups` for one, without the count and the index per reply)."""

    __slots__ = ("arrived", "listed", "reply", "then", "w", "waiting")

    def __init__(self, w: ResponseWriter, then: Callable[[Any], int], listed: bool) -> None:
        self.arrived = False
        self.listed = listed
        self.reply: Reply | None = None
        self.then = then
        self.w = w
        self.waiting = False  # _one returned PENDING: the outcome goes to w.done

    def arrive(self, reply: Reply | None) -> None:
        if not self.waiting:  # at once, inside resolve_then: _one runs `then`
            self.arrived = True
            self.reply = reply
            return
        _finish(self.w, self.then, [reply] if self.listed else reply)


def self_lookup_all(subs: Sequence[Request], w: ResponseWriter,
                    then: Callable[[list[Reply | None]], int]) -> int:
    """`self_lookup` of several requests at once: `then(replies)` gets the replies in `subs`' order."""
    if len(subs) == 1:
        return _one(subs[0], w, then, True)
    box = _Lookups(len(subs), w, then)
    for i, sub in enumerate(subs):
        lst = sub.listener
        if lst is None:
            box.arrive(i, None)
        else:
            lst.resolve_then(sub, partial(box.arrive, i))
    if box.left == 0:
        return then(box.replies)
    box.waiting = True
    return PENDING  # type: ignore[no-any-return]


class _Lookups:
    """The replies of `self_lookup_all` as they arrive; the last one runs `then` (if `waiting`)."""

    __slots__ = ("left", "replies", "then", "w", "waiting")

    def __init__(self, n: int, w: ResponseWriter, then: Callable[[list[Reply | None]], int]) -> None:
        self.left = n
        self.replies: list[Reply | None] = [None] * n
        self.then = then
        self.w = w
        self.waiting = False  # self_lookup_all returned PENDING: the outcome goes to w.done

    def arrive(self, i: int, reply: Reply | None) -> None:
        self.replies[i] = reply
        self.left -= 1
        if self.left or not self.waiting:
            return
        _finish(self.w, self.then, self.replies)


def _finish(w: ResponseWriter, then: Callable[[Any], int], replies: Any) -> None:
    """Run a self-lookup's `then` after it waited, and complete `w` with its outcome."""
    try:
        rc = then(replies)
    except Exception as e:  # PluginError or a panic: the writer chain reports it
        complete(w, e.rcode if isinstance(e, PluginError) else wire.SERVFAIL, e)
        return
    if rc is not PENDING:  # PENDING: `then` chained another lookup, which completes w
        complete(w, rc)


# -- the three shapes ------------------------------------------------------------------------------


class SyncHandler(Handler):
    """A handler whose own work never waits: implement `handle`, get both paths for free."""

    def handle(self, req: Request, w: ResponseWriter) -> int:
        """Answer and return the rcode, return a not-written rcode, or return NEXT."""
        return NEXT  # type: ignore[no-any-return]

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        rc = self.handle(req, w)
        if rc is NEXT:
            return await self.next_or_failure(req, w)
        return rc

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        rc = self.handle(req, w)
        if rc is NEXT:
            return self.next_continue(req, w)
        return rc


class Wrapper(WriterWrapper):
    """The per-query writer of a `WrapperHandler`: `write` may change the reply on its way out, and
    `after` runs once when the query completes below, on either path.

    `after(rcode, error)` returns the rcode to pass up, or raises (re-raises `error`) to pass an
    error up. `error` is the PluginError the chain below raised (None when it returned an rcode);
    panics (other exceptions) go up without `after`.

    `after_on_error_only`: True when `after(rcode, None)` returns `rcode` and does nothing else, so
    the machinery calls `after` only with an error (one Python call less per query and wrapper). It
    holds for a subclass that does not override `after`; a subclass that overrides `after` (or
    inherits it from a mixin) gets False unless it sets the attribute itself (errors' writer, which
    only reports errors, sets True).
    """

    __slots__ = ()
    after_on_error_only: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "after_on_error_only" not in cls.__dict__:  # the word of the nearest class that gave one
            own = next(k.__dict__ for k in cls.__mro__ if "after" in k.__dict__ or "after_on_error_only" in k.__dict__)
            cls.after_on_error_only = own.get("after_on_error_only", False)  # an `after` without a word: False

    def after(self, rcode: int, error: PluginError | None) -> int:
        if error is not None:
            raise error
        return rcode

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if error is None:
            if self.after_on_error_only:
                self.inner.done(rcode)
                return
        elif not isinstance(error, PluginError):
            self.inner.done(rcode, error)
            return
        try:
            rc = self.after(rcode, error)
        except PluginError as e:
            self.inner.done(e.rcode, e)
            return
        except Exception as e:  # a broken after-hook is a panic, as on the fast path
            self.inner.done(wire.SERVFAIL, e)
            return
        self.inner.done(rc)


class WrapperHandler(Handler):
    """A handler that wraps the writer (log, prometheus, errors, minimal, rewrite, loadbalance...).

    Implement `wrap(req, w)`: the request the rest of the chain gets and the `Wrapper` to give it,
    or None to pass the query on untouched. Both paths, and the PENDING completion, are derived.

    Or set `writer` when every query goes on unchanged with a writer made as `writer(w, self, req)`
    (errors, prometheus): `serve_fast` then makes it without calling `wrap`, one Python call less per
    query. A class that overrides `wrap` keeps its `wrap`.
    """

    writer: ClassVar[type[Any] | None] = None  # a Wrapper subclass taking (w, handler, req)
    _writer: ClassVar[type[Any] | None] = None  # `writer`, unless the class overrides `wrap`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._writer = cls.writer if cls.wrap is WrapperHandler.wrap else None

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper] | None:
        writer = self.writer
        return None if writer is None else (req, writer(w, self, req))

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        writer = self._writer
        nxt = self.next
        ww: Wrapper
        if writer is not None and nxt is not None:
            nreq = req
            ww = writer(w, self, req)
        else:
            got = self.wrap(req, w)
            if got is None or nxt is None:
                return self.fast_wrapped(req, w, got)
            nreq, ww = got
        # fast_wrapped's wrapped case, inline: this runs for every query in every wrapper of a chain,
        # and a call to fast_wrapped was one Python frame per wrapper and query.
        try:
            rc = nxt.serve_fast(nreq, ww)
            if rc is None:
                run_slow(nxt, nreq, ww)
                return PENDING  # type: ignore[no-any-return]
        except PluginError as e:
            return ww.after(e.rcode, e)
        if rc is PENDING or ww.after_on_error_only:
            return rc
        return ww.after(rc, None)

    def fast_wrapped(self, req: Request, w: ResponseWriter, got: tuple[Request, Wrapper] | None) -> int:
        """The fast path once `wrap` decided (for subclasses that decide in their own serve_fast, as
        rewrite does). `serve_fast` inlines its wrapped case; `next_continue` is inlined here."""
        nxt = self.next
        if nxt is None:
            err = self.no_next()
            if got is None:
                raise err
            return got[1].after(err.rcode, err)  # the wrapper (log, errors) still sees the failure
        if got is None:
            rc = nxt.serve_fast(req, w)
            if rc is None:
                run_slow(nxt, req, w)
                return PENDING  # type: ignore[no-any-return]
            return rc
        nreq, ww = got
        try:
            rc = nxt.serve_fast(nreq, ww)
            if rc is None:
                run_slow(nxt, nreq, ww)
                return PENDING  # type: ignore[no-any-return]
        except PluginError as e:
            return ww.after(e.rcode, e)
        if rc is PENDING or ww.after_on_error_only:
            return rc
        return ww.after(rc, None)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        got = self.wrap(req, w)
        if got is None:
            return await self.next_or_failure(req, w)
        nreq, ww = got
        try:
            rc = await self.next_or_failure(nreq, ww)
        except PluginError as e:
            return ww.after(e.rcode, e)
        return rc if ww.after_on_error_only else ww.after(rc, None)


class WaitingHandler(Handler):
    """A plan-then-maybe-wait handler (forward, cache's refreshes...): implement `start`, which
    answers, passes on (`self.next_continue`), or registers a continuation and returns PENDING;
    `serve_fast` is `start`, and `serve_dns` awaits the same `start` (`await_pending`)."""

    def start(self, req: Request, w: ResponseWriter) -> int:
        return self.next_continue(req, w)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        return self.start(req, w)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await await_pending(self.start, req, w)


# -- observers: wrappers without a writer ------------------------------------------------------------


def joined(reply: bytes | None, data: bytes) -> bytes:
    """What an observer sees once `data` is written after `reply` at its position (a plugin writing
    twice; the server sends only the first): one bytes object as long as all the replies together, whose
    header is the last one's that has a header (so its rcode byte is that reply's)."""
    if reply is None:
        return data
    if len(data) >= 4:
        return data[:4] + reply + data[4:]
    return reply + data if len(reply) >= 4 else bytes(len(reply) + len(data))


class _Observing(Wrapper):
    """An `ObserverHandler`'s writer where the writer it got is not the server's own (another wrapper's,
    a self-lookup's): keeps the reply that passes for `observe`, which it runs as `after`."""

    __slots__ = ("handler", "reply", "req", "started")

    def __init__(self, inner: ResponseWriter, handler: ObserverHandler, req: Request) -> None:
        self.written = False
        self.inner = inner
        self.handler = handler
        self.req = req
        self.reply: bytes | None = None
        clock = handler.clock
        self.started = None if clock is None else clock()

    def write(self, reply: Reply) -> None:
        data = wire.to_bytes(reply)
        self.reply = data if self.reply is None else joined(self.reply, data)
        self.written = True
        self.inner.write(data)

    def after(self, rcode: int, error: PluginError | None) -> int:
        return self.handler.observe(self.req, self, rcode, error, self.started)


class _FailureObserving(Wrapper):
    """`_Observing` for an observer of failures only: replies pass straight through (`write` is the
    writer below's bound method, `written` reads the writer below's); no `reply` is kept."""

    __slots__ = ("handler", "req", "started", "write")
    after_on_error_only = True

    def __init__(self, inner: ResponseWriter, handler: ObserverHandler, req: Request) -> None:
        self.inner = inner
        self.write = inner.write  # type: ignore[method-assign]
        self.handler = handler
        self.req = req
        clock = handler.clock
        self.started = None if clock is None else clock()

    @property
    def written(self) -> bool:  # type: ignore[override]
        return self.inner.written

    def after(self, rcode: int, error: PluginError | None) -> int:
        return self.handler.observe(self.req, self, rcode, error, self.started)


class ObserverHandler(WrapperHandler):
    """A wrapper that passes every query on unchanged and only looks at how it ended (errors,
    prometheus): implement `observe` instead of a writer.

    `observe(req, w, rcode, error, started)` runs once when the query completes below this handler
    (returned, raised a PluginError, or completed later through `done`), as `Wrapper.after` does: it
    returns the rcode to pass up, or raises (re-raises `error`) to pass an error up; panics go up
    without it. `w.written` tells whether a reply was written below, `w.reply` holds it as bytes (see
    `joined` for a plugin that writes twice). `started` is `clock()` taken when the query came by, when
    the class sets `clock` (a callable without arguments, e.g. `time.monotonic`), else None.
    `observe_errors_only = True`: `observe` runs only for a PluginError (and `w.reply` is not kept).

    On the server's own writer (`w.observable`: nothing between this handler and the client changes
    replies or completions) nothing is made per query: `observe` runs right after the chain below
    returns, and for a query that completes later the server's writer runs it from its `done` (the
    handler registers with `w.watch`; inner observers run first). Below another writer (another
    wrapper's, a self-lookup's Recorder) a writer made per query does the same work, so both observe
    the same. `serve_dns` stays valid either way.
    """

    writer: ClassVar[type[Any] | None] = _Observing
    clock: ClassVar[Any] = None  # a callable without arguments, or None
    observe_errors_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        clock = cls.__dict__.get("clock")
        if isinstance(clock, FunctionType):  # a Python function would bind as a method
            cls.clock = staticmethod(clock)
        if "writer" not in cls.__dict__:
            cls.writer = _FailureObserving if cls.observe_errors_only else _Observing
        super().__init_subclass__(**kwargs)

    def observe(self, req: Request, w: ResponseWriter, rcode: int, error: PluginError | None,
                started: Any) -> int:
        if error is not None:
            raise error
        return rcode

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        nxt = self.next
        if nxt is None or not w.observable:
            return WrapperHandler.serve_fast(self, req, w)  # a writer per query
        clock = self.clock
        started = None if clock is None else clock()
        try:
            rc = nxt.serve_fast(req, w)
            if rc is None:  # the rest of the chain awaits: a task, which completes through w.done
                run_slow(nxt, req, w)
                rc = PENDING
        except PluginError as e:
            return self.observe(req, w, e.rcode, e, started)
        if rc is PENDING:
            w.watch(self, req, started)  # type: ignore[attr-defined]  # observable: the server's writer
            return PENDING
        if self.observe_errors_only:
            return rc
        return self.observe(req, w, rc, None, started)

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        if not w.observable:
            return await WrapperHandler.serve_dns(self, req, w)
        clock = self.clock
        started = None if clock is None else clock()
        try:
            rc = await self.next_or_failure(req, w)
        except PluginError as e:
            return self.observe(req, w, e.rcode, e, started)
        return rc if self.observe_errors_only else self.observe(req, w, rc, None, started)


def observed(hooks: list[tuple[ObserverHandler, Request, Any]], w: ResponseWriter, rcode: int,
             error: BaseException | None) -> tuple[int, BaseException | None]:
    """The server writer's `done`: run the observers `w.watch` collected (inner first) as their writers'
    `Wrapper.done` would, and return the (rcode, error) the query completes with."""
    for handler, req, started in hooks:
        if error is None:
            if handler.observe_errors_only:
                continue
        elif not isinstance(error, PluginError):
            break  # a panic goes up without after-hooks
        try:
            rcode = handler.observe(req, w, rcode, error, started)
            error = None
        except PluginError as e:
            rcode, error = e.rcode, e
        except Exception as e:  # a broken observe is a panic, as a broken after-hook is
            rcode, error = wire.SERVFAIL, e
    return rcode, error
