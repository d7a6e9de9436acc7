"""Small helpers of the fault-injection tests: metrics scrapes and bounded waits."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import trio
from conftest import http_get


async def metric(port: int, name: str, labels: str = "") -> float:
    """The sum of the samples of `name` whose label text contains `labels` (0 when absent)."""
    status, _, body = await http_get(port, "/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        m = re.match(rf"{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    """Poll `check` until true (bounded by `timeout`)."""
    with trio.move_on_after(timeout):
        while not await check():
            await trio.sleep(0.05)
        return True
    return await check()
