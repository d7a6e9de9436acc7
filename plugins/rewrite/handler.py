"""rewrite's handler: change the question (name, type, class, EDNS0 options) on the way in and the
reply on the way out.

All `rewrite` lines of a block are one handler whose rules run in order; a matching `stop` rule
ends processing. The reply goes back through a reverter that restores the client's question and
applies the response rules (answer name/value, ttl, rcode, cname).
"""

from __future__ import annotations

import struct
from functools import partial

from pycoredns import wire
from pycoredns.layout import layout_of
from pycoredns.log import plugin_logger
from pycoredns.plugin import (
    PENDING,
    PluginError,
    Request,
    ResponseWriter,
    Wrapper,
    WrapperHandler,
    await_pending,
    client_write,
)
from pycoredns.wire import Reply

from .names import valid_name
from .response import CnameTarget, Message, PreparedRules, ResponseRule, revert, revert_message
from .rules import STOP, CnameRule, Rule, State

log = plugin_logger("rewrite")


class _Capture(Wrapper):
    """Holds the downstream reply so the reverter can rewrite it when the query completes."""

    __slots__ = ("plan", "reply", "reverted", "rewrite")

    def __init__(self, inner: ResponseWriter, rewrite: Rewrite, plan: _Plan) -> None:
        super().__init__(inner)
        self.reply: Reply | Message | None = None
        self.reverted = False  # `reply` went through the reverter already
        self.rewrite = rewrite
        self.plan = plan

    def write(self, reply: Reply) -> None:
        if self.reply is None:
            self.written = True
            self.reply = reply

    def after(self, rcode: int, error: PluginError | None) -> int:
        return self.rewrite._finish(self.plan, self.inner, self, rcode, error)


class _LookupCapture(_Capture):
    """`cname` rules: when the query completes below, the rules look their new targets up through the
    server (by continuation) before the reply is reverted and written."""

    __slots__ = ()

    def done(self, rcode: int, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, PluginError):
            self.inner.done(rcode, error)  # a panic goes up untouched, as Wrapper.done does
            return
        try:
            rc = self.looked_up(rcode, error)
        except PluginError as e:
            self.inner.done(e.rcode, e)
            return
        except Exception as e:
            self.inner.done(wire.SERVFAIL, e)
            return
        if rc is not PENDING:  # PENDING: the last lookup completes the writer below
            self.inner.done(rc)

    def looked_up(self, rcode: int, error: PluginError | None) -> int:
        """Apply the `cname` rules to the captured reply, then `_finish`: the rcode or PENDING."""
        plan = self.plan

        def finish() -> int:
            return self.rewrite._finish(plan, self.inner, self, rcode, error)

        if self.reply is None:
            return finish()
        try:
            data = wire.to_bytes(self.reply)
        except _DAMAGED as e:  # passed on, as in _finish
            _damaged(plan, e)
            return finish()
        if data.find(_CNAME_TYPE, 12) < 0 and self.reverted_at_once(data):
            return finish()
        try:
            lay = layout_of(data)
            if wire.TYPE_CNAME not in lay.types:  # nothing for the rules to change: no decompression here
                return finish()
            msg = Message(data, lay)
        except _DAMAGED as e:  # passed on, as in _finish
            _damaged(plan, e)
            return finish()
        rules = plan.lookups

        def run(i: int) -> int:
            if i < len(rules):
                return rules[i].apply(msg, plan.new_req, self.inner, partial(run, i + 1))
            self.reply = msg  # reverted as it is (revert_message): no pack and read again
            return finish()

        return run(0)

    def reverted_at_once(self, data: bytes) -> bool:
        """A reply in which no record can be a CNAME (no 00 05 after the header) has nothing for the
        rules: it is reverted without the walk that looks for CNAMEs (a reply the reverter takes, that
        walk takes too). False when the reverter fails: the walk then reports the damage as always."""
        try:
            self.reply = self.rewrite._revert(self.plan, data)
        except _DAMAGED:
            return False
        self.reverted = True
        return True


def _damaged(plan: _Plan, e: Exception) -> None:
    log.warning(f"cannot rewrite reply for {plan.state.req.name}: {e}")


_CNAME_TYPE = wire.TYPE_CNAME.to_bytes(2, "big")
_DAMAGED = (wire.WireError, ValueError, IndexError, struct.error)  # a reply the reverter cannot take


class _Plan:
    """What the rules decided for one query."""

    __slots__ = ("lookups", "new_req", "responses", "state", "stopped")

    def __init__(self, state: State, responses: list[ResponseRule], stopped: bool,
                 lookups: list[CnameTarget] | None = None) -> None:
        self.state = state
        self.responses = responses
        self.stopped = stopped
        self.new_req = state.build() if state.changed() else state.req
        self.lookups = [r for r in responses if isinstance(r, CnameTarget)] if lookups is None else lookups

    @property
    def reverts(self) -> bool:
        return self.stopped or bool(self.responses)


def _fixed_plan(rules: list[Rule]) -> tuple[list[ResponseRule], bool, list[CnameTarget]] | None:
    """What `_plan` decides for any query when every rule is a `cname` rule (each always applies and
    changes no question): the response rules up to the first `stop` one, whether there was one, and
    those that look names up; None for any other rules (or none)."""
    if not rules or not all(type(r) is CnameRule for r in rules):
        return None
    responses: list[ResponseRule] = []
    stopped = False
    for rule in rules:
        responses.append(rule.response)  # type: ignore[attr-defined]
        if rule.mode == STOP:
            stopped = True
            break
    return PreparedRules(responses), stopped, list(responses)  # type: ignore[arg-type]


class Rewrite(WrapperHandler):
    name = "rewrite"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.fixed = _fixed_plan(rules)

    def _plan(self, req: Request) -> _Plan | None:
        """Run the request rules; None when none applied."""
        st = State(req)
        if self.fixed is not None:  # cname rules only: the same plan for every query
            return _Plan(st, *self.fixed)
        responses: list[ResponseRule] = []
        applied = False
        for rule in self.rules:
            got = rule.rewrite(st)
            if got is None:
                continue
            applied = True
            # (the client's own name, read off the wire, is always a domain name: only a new one is checked)
            if st.renamed() and not valid_name(st.qname):
                log.error(f"Invalid name after rewrite: {st.qname}")
                raise PluginError(wire.SERVFAIL, f"invalid name after rewrite: {st.qname}")
            responses.extend(got)
            if rule.mode == STOP:
                return _Plan(st, responses, True)
        return _Plan(st, responses, False) if applied else None

    def _revert(self, plan: _Plan, reply: Reply | Message) -> bytes:
        """The reply through the reverter; raises what it raises on a damaged reply (_DAMAGED)."""
        req = plan.state.req
        if isinstance(reply, Message):  # what `cname` rules rebuilt
            return revert_message(reply, req, plan.responses, plan.state.edns_created)
        # a self-lookup's own pass through `cname` rules: its caller reads the answers (answers_of)
        keep = req.depth > 0 and bool(plan.lookups)
        return revert(bytes(wire.to_bytes(reply)), req, plan.responses, plan.state.edns_created, keep)

    def _reverted(self, plan: _Plan, reply: Reply | Message) -> Reply:
        try:
            return self._revert(plan, reply)
        except _DAMAGED as e:  # goes out as the plugin below wrote it
            _damaged(plan, e)
            return reply.pack() if isinstance(reply, Message) else reply

    def _finish(self, plan: _Plan, w: ResponseWriter, cap: _Capture, rc: int, err: PluginError | None) -> int:
        """Write the captured reply through the reverter; in stop mode also answer unwritten rcodes."""
        if cap.reply is not None:
            w.write(cap.reply if cap.reverted else self._reverted(plan, cap.reply))  # type: ignore[arg-type]
        elif plan.stopped and not client_write(rc):
            # CoreDNS writes the error itself so the question matches the client's.
            w.write(self._reverted(plan, plan.new_req.empty_reply(rc)))
            if err is not None:
                raise err
            return wire.NOERROR
        if err is not None:
            raise err
        return rc

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        plan = self._plan(req)
        if plan is None:
            return await self.next_or_failure(req, w)
        if not plan.reverts:
            return await self.next_or_failure(plan.new_req, w)
        if plan.lookups:
            return await await_pending(partial(self._serve_lookups, plan=plan), req, w)
        cap = _Capture(w, self, plan)
        try:
            rc = await self.next_or_failure(plan.new_req, cap)
        except PluginError as e:
            return cap.after(e.rcode, e)
        return cap.after(rc, None)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        plan = self._plan(req)
        if plan is None:
            return self.next_continue(req, w)
        if not plan.reverts:
            return self.next_continue(plan.new_req, w)
        if plan.lookups:
            return self._serve_lookups(req, w, plan)
        return self.fast_wrapped(req, w, (plan.new_req, _Capture(w, self, plan)))

    def _serve_lookups(self, req: Request, w: ResponseWriter, plan: _Plan) -> int:
        """Answer rules that look names up (`cname`): the rest of the chain, then the lookups, each by
        continuation (no task waits). The rcode, or PENDING."""
        cap = _LookupCapture(w, self, plan)
        try:
            rc = self.next_continue(plan.new_req, cap)
        except PluginError as e:
            return cap.looked_up(e.rcode, e)
        if rc is PENDING:
            return PENDING  # type: ignore[no-any-return]
        return cap.looked_up(rc, None)
