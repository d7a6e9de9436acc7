"""The public plugin API: handlers, the setup controller, errors.

A plugin is a module with `setup(c: Controller) -> None`. Setup reads the directive's tokens through
the controller (a caddy-style dispenser whose errors read exactly like CoreDNS's) and adds handlers
with `c.add_handler(...)`. The server chains handlers in plugin.cfg order (`pycoredns.directives`).
Beyond handlers, setup reaches the runtime only through the controller's setup context (hooks, HTTP
routes, shared state, tasks, listen addresses; `pycoredns.context`, DEVELOPERS.md).
"""

from __future__ import annotations

from .context import ConfigScope, Hook, Route, Runtime
from .controller import Controller, config_atoi, config_duration, config_uint, go_quote
from .corefile import CorefileError
from .exceptions import ConfigError, PluginError
from .handler import (
    NEXT,
    NOT_WRITTEN,
    PENDING,
    Handler,
    ObserverHandler,
    SyncHandler,
    WaitingHandler,
    Wrapper,
    WrapperHandler,
    await_pending,
    client_write,
    complete,
    run_slow,
    self_lookup,
    self_lookup_all,
)
from .request import Recorder, Request, ResponseWriter, WriterWrapper
from .timers import call_at, call_later

__all__ = [
    "NEXT",
    "NOT_WRITTEN",
    "PENDING",
    "ConfigError",
    "ConfigScope",
    "Controller",
    "CorefileError",
    "Handler",
    "Hook",
    "ObserverHandler",
    "PluginError",
    "Recorder",
    "Request",
    "ResponseWriter",
    "Route",
    "Runtime",
    "SyncHandler",
    "WaitingHandler",
    "Wrapper",
    "WrapperHandler",
    "WriterWrapper",
    "await_pending",
    "call_at",
    "call_later",
    "client_write",
    "complete",
    "config_atoi",
    "config_duration",
    "config_uint",
    "go_quote",
    "run_slow",
    "self_lookup",
    "self_lookup_all",
]
