"""Where the Corefile text comes from: CoreDNS's lookup order (`-conf` file or stdin, ./Corefile, default).

Sits low in the import graph so the CLI and embedders share one loader without importing each other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .exceptions import StartupError

DEFAULT_COREFILE = ".:{port} {{\nwhoami\nlog\n}}\n"

Loader = Callable[[], tuple[str, str]]
"""Returns (Corefile text, file name for messages); raises StartupError when it cannot."""


def make_loader(conf: str, port: int) -> Loader:
    """CoreDNS's Corefile lookup: -conf file (or stdin), ./Corefile, else the built-in default."""
    stdin_text: list[str] = []

    def load() -> tuple[str, str]:
        if conf == "stdin":
            if not stdin_text:
                if sys.stdin is None or sys.stdin.isatty():
                    return DEFAULT_COREFILE.format(port=port), "Corefile"
                stdin_text.append(sys.stdin.read())
            return stdin_text[0], "stdin"
        if conf:
            try:
                with open(conf, encoding="utf-8", newline="") as f:  # a CRLF inside quotes is kept (caddy)
                    return f.read(), conf
            except OSError as e:
                raise StartupError(f"loading Caddyfile via flag: open {conf}: {_strerror(e)}") from None
        if os.path.exists("Corefile"):
            with open("Corefile", encoding="utf-8", newline="") as f:
                return f.read(), "Corefile"
        return DEFAULT_COREFILE.format(port=port), "Corefile"

    return load


def _strerror(e: OSError) -> str:
    return (e.strerror or str(e)).lower()
