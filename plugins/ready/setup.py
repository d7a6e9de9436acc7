"""`ready [ADDRESS] { monitor until-ready|continuously }`: Corefile parsing and registration."""

from __future__ import annotations

from pycoredns.plugin import Controller

from .ready import DEFAULT_ADDRESS, Ready

MONITOR = {"until-ready": False, "continuously": True}  # value -> keep asking after the first 200


def setup(c: Controller) -> None:
    addr = DEFAULT_ADDRESS
    continuously = False
    for _ in c.occurrences(once=True):
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() != "monitor":
                raise c.arg_err()
            margs = c.remaining_args()
            if len(margs) != 1 or margs[0] not in MONITOR:
                raise c.arg_err()
            continuously = MONITOR[margs[0]]
    runtime = c.runtime
    c.http_route(addr, "/ready", Ready(c.not_ready, lambda: runtime.status_detail, continuously))

    async def close() -> None:  # first on shutdown, before health's lameduck: load balancers drain us
        c.remove_http_route(addr, "/ready")

    c.on_final_shutdown(close)
