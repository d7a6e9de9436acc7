"""`k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }`."""

from __future__ import annotations

from pycoredns.config import origins_from_args_or_keys
from pycoredns.plugin import ConfigError, Controller, config_atoi

from .handler import REQUIRED, External


def setup(c: Controller) -> None:
    e = External()
    for _ in c.occurrences():
        e.zones = origins_from_args_or_keys(c.remaining_args(), c.keys)
        while c.next_block():
            option = c.val()
            if option == "ttl":
                args = c.remaining_args()
                if not args:
                    raise c.arg_err()
                t = config_atoi(args[0])
                if not 0 <= t <= 3600:
                    raise c.errf("ttl must be in range [0, 3600]: %d", t)
                e.ttl = t
            elif option == "apex":
                args = c.remaining_args()
                if not args:
                    raise c.arg_err()
                e.apex = args[0]
            elif option == "headless":
                e.headless = True
            elif option == "fallthrough":
                e.fall.set_zones(c.remaining_args())
            else:
                raise c.errf("unknown property '%s'", option)

    async def link() -> None:
        backend = c.handler("kubernetes")
        if backend is None:
            raise ConfigError("plugin/k8s_external: kubernetes plugin not loaded")
        if not all(callable(getattr(backend, m, None)) for m in REQUIRED):
            raise ConfigError("plugin/k8s_external: kubernetes plugin does not implement the Externaler interface")
        e.backend = backend

    c.on_startup(link)
    c.add_handler(e)
