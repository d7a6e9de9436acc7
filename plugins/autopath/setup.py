"""autopath's Corefile parsing: `autopath [ZONE...] RESOLV-CONF|@PLUGIN` and the resolv.conf reader.

With `@PLUGIN` the search list comes per client from that plugin of the same block
(`autopath_search(req)`), looked up by a startup hook once the chains exist.
"""

from __future__ import annotations

from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller

from .handler import AutoPath

log = plugin_logger("autopath")


def parse_resolv_conf(path: str) -> list[str]:
    """The search list of a resolv.conf as miekg's ClientConfigFromFile reads it (last line wins)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"failed to parse {_q(path)}: open {path}: {reason.lower()}") from None
    search: list[str] = []
    for line in text.splitlines():
        f = line.split()
        if not f or f[0][0] in "#;":
            continue
        if f[0] == "domain":
            search = f[1:2]
        elif f[0] == "search":
            search = f[1:]
    return [(s if s.endswith(".") else s + ".").lower() for s in search]


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup(c: Controller) -> None:
    zones: list[str] = []
    search: list[str] = []
    plugin = ""
    for _ in c.occurrences():
        args = c.remaining_args()
        if not args:
            raise ConfigError("no resolv-conf specified")
        resolv = args[-1]
        if resolv.startswith("@"):
            plugin = resolv[1:]
        else:
            search = [*parse_resolv_conf(resolv), ""]  # relative to the working directory, as CoreDNS
        zones = c.zones_from(args[:-1])
    ap = AutoPath(zones, search, c.server_label())
    c.add_handler(ap)
    if plugin:
        block = c.block

        async def attach() -> None:
            """After the chains exist: take the search function of the named plugin in this block."""
            h = next((h for h in block.handlers if h.name == plugin), None)
            if h is None:
                return
            fn = getattr(h, "autopath_search", None)
            if fn is None:
                log.error(f"{plugin} plugin does not support autopath")
                return
            ap.search_func = fn

        c.on_startup(attach)
