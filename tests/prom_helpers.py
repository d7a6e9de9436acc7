"""Reading a Prometheus scrape in tests: fetch /metrics, parse the text format strictly, pick a sample
(shared by tests/plugins/prometheus/ and tests/test_hotpath.py)."""

from __future__ import annotations

import re

from conftest import http_get

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


async def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    """(status, content type, body) of one HTTP GET on 127.0.0.1."""
    status, ctype, body = await http_get(port, path)
    return status, ctype, body.decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Parse the text format strictly enough to catch malformed lines: {(name, labels): value}."""
    out: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        key = (m.group(1), labels)
        assert key not in out, f"duplicate sample {line!r}"
        out[key] = float(m.group(4))
    return out


def value(s: dict, metric: str, /, **labels: str) -> float:
    return s.get((metric, frozenset(labels.items())), 0.0)
