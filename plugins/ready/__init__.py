"""ready: `GET /ready` is 200 OK once every plugin that reports readiness is ready, else 503.

The 503 body lists the not-ready plugins, sorted and comma-separated (e.g. `kubernetes`). The
endpoint closes first on shutdown, before health's lameduck, so load balancers drain this instance.
"""

from __future__ import annotations

from pycoredns.log import plugin_logger
from pycoredns.plugin import Controller

log = plugin_logger("ready")
DEFAULT_ADDRESS = ":8181"


def setup(c: Controller) -> None:
    addr = DEFAULT_ADDRESS
    monitor_continuously = False
    for _ in c.occurrences(once=True):
        addr = c.address_arg(addr)
        while c.next_block():
            if c.val() != "monitor":
                raise c.arg_err()
            margs = c.remaining_args()
            if len(margs) != 1 or margs[0] not in ("until-ready", "continuously"):
                raise c.arg_err()
            monitor_continuously = margs[0] == "continuously"
    instance = c.instance
    state = {"ready": False}

    def ready(method: str, target: str) -> tuple[int, str, bytes]:
        if state["ready"] and not monitor_continuously:
            return 200, "text/plain; charset=utf-8", b"OK"
        not_ready = instance.ready()
        detail = instance.process.shared.get("ready_detail")
        if not_ready:
            todo = ",".join(not_ready)
            log.info(f'Still waiting on: "{todo}"')
            return 503, "text/plain; charset=utf-8", todo.encode()
        state["ready"] = True
        body = b"OK" if not detail else f"OK\n{detail}".encode()
        return 200, "text/plain; charset=utf-8", body

    c.http_route(addr, "/ready", ready)

    async def close() -> None:
        srv = instance.process.http.get(addr)
        if srv is not None:
            srv.routes.pop("/ready", None)
            if not srv.routes:
                srv.close()

    c.on_final_shutdown(close)
