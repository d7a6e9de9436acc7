"""Which directives exist, in which order they chain, and where their setup lives.

The order is CoreDNS's classic plugin.cfg (v1.11.3 to v1.14.1: `root` first, `cache` in front of
`rewrite`, `acl` and `autopath`), the order the CoreDNS releases kubeadm ships use; newer names
(`proxyproto`, `shed`) are recognised so Corefiles that mention them parse. Directives we do not
implement parse and then fail at setup exactly like a CoreDNS build without that plugin.

Third-party plugins register through the entry-point group `pycoredns.plugins`: the entry point's
name is the directive, its value a module with `setup(c)` and `BEFORE` or `AFTER` naming the
directive it slots next to (default: just before `on`, where CoreDNS puts external plugins).
Scanning the installed distributions for them (`importlib.metadata`: ~15 ms of CPU at start, its import
included) waits until a name is not known otherwise: a Corefile naming only built-in directives starts
without it (see `directives(entry_points=False)`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType

ORDER: list[str] = [
    "root", "metadata", "geoip", "cancel", "proxyproto", "tls", "timeouts", "multisocket", "quic",
    "grpc_server", "https", "https3", "reload", "nsid", "bufsize", "bind", "debug", "trace", "ready",
    "health", "pprof", "shed", "prometheus", "errors", "log", "dnstap", "local", "dns64", "acl", "any",
    "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec", "autopath", "minimal",
    "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external", "kubernetes",
    "file", "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on", "sign",
    "view", "nomad",
]


def _builtin() -> set[str]:
    """Directives with an implementation shipped in pycoredns.plugins (module name = directive)."""
    import pycoredns.plugins as pkg

    return {m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name in ORDER}


BUILTIN: set[str] = _builtin()

ENTRY_POINT_GROUP = "pycoredns.plugins"
_external: dict[str, str] = {}
_loaded_entry_points = False


def _load_entry_points() -> None:
    """Insert third-party directives into ORDER at their declared positions (once)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in ORDER:
            continue
        try:
            mod = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the server
            import logging

            logging.getLogger("pycoredns").warning(f"plugin {ep.name}: cannot load {ep.value}: {exc}")
            continue
        register(ep.name, mod, before=getattr(mod, "BEFORE", None), after=getattr(mod, "AFTER", None))


def register(name: str, module: ModuleType | str, before: str | None = None, after: str | None = None) -> None:
    """Add a directive (library users and entry points). `module` has `setup(c)`."""
    if name in ORDER:
        ORDER.remove(name)
    if after and after in ORDER:
        ORDER.insert(ORDER.index(after) + 1, name)
    elif before and before in ORDER:
        ORDER.insert(ORDER.index(before), name)
    else:
        ORDER.insert(ORDER.index("on"), name)
    _external[name] = module if isinstance(module, str) else module.__name__
    if not isinstance(module, str):
        importlib.import_module(module.__name__)  # already imported; keeps a reference


def directives(entry_points: bool = True) -> list[str]:
    """Every directive the Corefile parser accepts, in chain order. `entry_points=False`: without looking
    for third-party plugins not registered yet (the parser uses the list only to reject unknown names, so
    a Corefile it accepts parses the same with them; one it rejects is parsed again with them)."""
    if entry_points:
        _load_entry_points()
    return list(ORDER)


def entry_points_loaded() -> bool:
    return _loaded_entry_points


def ordered(used: set[str]) -> list[str]:
    """The directives in chain order, third-party ones looked up first if `used` names one not known."""
    return directives(entry_points=not used <= set(ORDER))


def available() -> list[str]:
    """Directives with an implementation (what `-plugins` lists)."""
    _load_entry_points()
    return sorted(BUILTIN | set(_external))


def setup_function(name: str) -> Callable[..., None] | None:
    """The directive's `setup(c)`, imported on first use; None when not implemented."""
    if name not in _external and name not in BUILTIN:
        _load_entry_points()
    if name in _external:
        return importlib.import_module(_external[name]).setup  # type: ignore[no-any-return]
    if name in BUILTIN:
        return importlib.import_module(f"pycoredns.plugins.{name}").setup  # type: ignore[no-any-return]
    return None


def position(name: str) -> int:
    return ORDER.index(name)
