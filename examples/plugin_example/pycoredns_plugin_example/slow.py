"""slow: a plan-then-maybe-wait handler (WaitingHandler) that waits without a task.

For names in its zone it registers a continuation with `call_later` and returns PENDING; the timer
task calls it 50 ms later, and it completes the query with `w.write` and `w.done`. `serve_dns` (the
path self-lookups take) is derived: it awaits the same `start`.
"""

from __future__ import annotations

from pycoredns import wire
from pycoredns.plugin import PENDING, Controller, Request, ResponseWriter, WaitingHandler, call_later
from pycoredns.util import is_subdomain

AFTER = "count"
DELAY = 0.05


class Slow(WaitingHandler):
    name = "slow"

    def __init__(self, zone: str = "slow.test.") -> None:
        self.zone = zone

    def start(self, req: Request, w: ResponseWriter) -> int:
        if not is_subdomain(self.zone, req.name):
            return self.next_continue(req, w)

        def later() -> None:
            w.write(req.empty_reply(wire.NXDOMAIN))
            w.done(wire.NXDOMAIN)

        call_later(DELAY, later)
        return PENDING  # type: ignore[no-any-return]


def setup(c: Controller) -> None:
    zone = "slow.test."
    for _ in c.occurrences():
        args = c.remaining_args()
        if len(args) > 1:
            raise c.arg_err()
        if args:
            zone = args[0].lower().rstrip(".") + "."
    c.add_handler(Slow(zone))
