"""The chain link: `Handler`, `SyncHandler` and the rcodes that mean "not written".

See DEVELOPERS.md for the contract. Plugins import these through `pycoredns.plugin`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import wire
from .exceptions import PluginError
from .request import Request, ResponseWriter

NOT_WRITTEN = frozenset((wire.SERVFAIL, wire.REFUSED, wire.FORMERR, wire.NOTIMP))


def client_write(rcode: int) -> bool:
    """True when a handler returning `rcode` has written the reply itself (CoreDNS ClientWrite)."""
    return rcode not in NOT_WRITTEN


class _Next:
    """Sentinel a SyncHandler returns to pass the query on."""

    def __repr__(self) -> str:
        return "NEXT"


NEXT: Any = _Next()


class Handler:
    """A link in a server block's chain. See DEVELOPERS.md for the contract."""

    name: ClassVar[str] = ""
    next: Handler | None = None

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        return await self.next_or_failure(req, w)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        """Synchronous attempt: the rcode, or None when the query needs waiting (nothing done)."""
        return None

    async def next_or_failure(self, req: Request, w: ResponseWriter) -> int:
        if self.next is None:
            raise PluginError(wire.SERVFAIL, f"plugin/{self.name}: no next plugin found")
        return await self.next.serve_dns(req, w)

    def next_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if self.next is None:
            raise PluginError(wire.SERVFAIL, f"plugin/{self.name}: no next plugin found")
        return self.next.serve_fast(req, w)

    # Optional hooks.
    def ready(self) -> bool | None:
        """Readiness for the `ready` plugin: None when the plugin does not report readiness."""
        return None


class SyncHandler(Handler):
    """A handler whose own work never waits: implement `handle`, get both paths for free."""

    def handle(self, req: Request, w: ResponseWriter) -> int:
        """Answer and return the rcode, return a not-written rcode, or return NEXT."""
        return NEXT

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        rc = self.handle(req, w)
        if rc is NEXT:
            return await self.next_or_failure(req, w)
        return rc

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        rc = self.handle(req, w)
        if rc is NEXT:
            return self.next_fast(req, w)
        return rc
