"""The `/ready` route: 200 once every plugin that reports readiness is ready, else 503 with their names."""

from __future__ import annotations

from collections.abc import Callable

from pycoredns.log import plugin_logger

log = plugin_logger("ready")
DEFAULT_ADDRESS = ":8181"
TEXT = "text/plain; charset=utf-8"


class Ready:
    """The route of one configuration. Until-ready monitoring stops asking once it was ready."""

    def __init__(self, not_ready: Callable[[], list[str]], detail: Callable[[], str], continuously: bool) -> None:
        self.not_ready = not_ready  # Controller.not_ready: names of plugins still starting
        self.detail = detail  # a line the process adds to OK (running on the last known good Corefile)
        self.continuously = continuously
        self.was_ready = False

    def __call__(self, method: str, target: str) -> tuple[int, str, bytes]:
        if self.was_ready and not self.continuously:
            return 200, TEXT, b"OK"
        waiting = self.not_ready()
        if waiting:
            todo = ",".join(waiting)
            log.info(f'Still waiting on: "{todo}"')
            return 503, TEXT, todo.encode()
        self.was_ready = True
        detail = self.detail()
        return 200, TEXT, b"OK" if not detail else f"OK\n{detail}".encode()
