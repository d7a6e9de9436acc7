"""The metadata handler: fill `req.meta` from every provider of the block, then pass the query on.

A provider is any handler of the same server block with a method

    def metadata(self, req: Request) -> Mapping[str, str]: ...

returning labels such as `view/name` or `kubernetes/namespace` (CoreDNS's metadata.Provider). The
values are computed eagerly (CoreDNS stores functions evaluated on use). Consumers read
`req.meta[label]`: `log` as `{/label}`, `rewrite` and `template` likewise. `req.meta` is a dict
(possibly empty) whenever the block has `metadata`, None otherwise, which is how `log` tells "no
metadata plugin" (placeholders print `-`) from "metadata collected".
"""

from __future__ import annotations

from pycoredns.plugin import Handler, Wrapper, WrapperHandler
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import zone_match


class Metadata(WrapperHandler):
    name = "metadata"

    def __init__(self, zones: list[str]) -> None:
        self.zones = zones
        self.providers: list[Handler] = []

    def collect(self, req: Request) -> None:
        meta = dict(req.meta) if req.meta else {}
        if zone_match(self.zones, req.name) is not None:
            for p in self.providers:
                meta.update(p.metadata(req))  # type: ignore[attr-defined]
        req.meta = meta

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, Wrapper] | None:
        self.collect(req)  # the request gains its metadata; the writer does not change
        return None
