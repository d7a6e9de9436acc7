"""The view handler: a filter the server consults when it picks a block, and `view/name` metadata.

Every `expr` of the block must evaluate to true (a runtime error counts as false) for the block to
serve the query; blocks sharing a zone and port are tried top to bottom (`pycoredns.server`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from pycoredns import wire
from pycoredns.plugin import Handler
from pycoredns.request import Request, ResponseWriter

from .expr import ExprError, Node, run


def _incidr(ip: str, cidr: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.strip("[]").split("%")[0])
    except ValueError:
        raise ExprError("first argument is not an IP address") from None
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ExprError(f"invalid CIDR address: {cidr}") from None
    return addr.version == net.version and addr in net


def environment(req: Request | None) -> dict[str, Callable]:
    """CoreDNS's expression.DefaultEnv: the functions an expression can call."""
    r = req
    return {
        "incidr": _incidr,
        "metadata": lambda label: str((r.meta or {}).get(label, "")) if r else "",
        "type": lambda: wire.type_name(r.qtype) if r else "",
        "name": lambda: r.name if r else "",
        "class": lambda: wire.class_name(r.qclass) if r else "",
        "proto": lambda: r.proto if r else "",
        "size": lambda: len(r.wire) if r else 0,
        "client_ip": lambda: r.remote[0] if r else "",
        "port": lambda: str(r.remote[1]) if r else "",
        "id": lambda: r.id if r else 0,
        "opcode": lambda: (r.flags >> 11) & 0xF if r else 0,
        "do": lambda: r.do if r else False,
        "bufsize": lambda: r.size() if r else 0,
        "server_ip": lambda: r.local[0] if r else "",
        "server_port": lambda: str(r.local[1]) if r else "",
    }


FUNCTIONS = environment(None)


class View(Handler):
    name = "view"

    def __init__(self, view_name: str, programs: list[Node], block_extra: dict | None = None) -> None:
        self.view_name = view_name
        self.programs = programs
        self.block_extra = block_extra if block_extra is not None else {}

    def filter(self, req: Request) -> bool:
        collector = self.block_extra.get("metadata")
        if collector is not None:  # CoreDNS collects the block's metadata before its filters run
            collector.collect(req)
        env = environment(req)
        for prog in self.programs:
            try:
                if run(prog, env) is not True:
                    return False
            except Exception:  # ExprError or a Python error from a function: not a match, as CoreDNS
                return False
        return True

    def metadata(self, req: Request) -> dict[str, str]:
        return {"view/name": self.view_name}

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, w)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        return self.next_fast(req, w)
