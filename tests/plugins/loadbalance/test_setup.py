"""loadbalance: broken Corefiles are refused with one clean `plugin/loadbalance: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
import trio
from broken_corefiles import block, check_broken, check_message, check_must_fail, load
from conftest import query, running

from pycoredns import metrics

BROKEN: list[str] = [
    'loadbalance bogus',
    'loadbalance round_robin x',
    'loadbalance weighted',
    'loadbalance weighted /nonexistent',
    'loadbalance weighted /etc/hosts {\n reload abc\n }',
    'loadbalance weighted /etc/hosts {\n bogus\n }',
    'loadbalance weighted /etc/hosts {\n reload -1s\n }',
    'loadbalance round_robin {\n bogus\n }',
    'loadbalance prefer 300.1.1.1',
    'loadbalance weighted /tmp/x\x00y',
    'loadbalance ""',
    'loadbalance weighted ""',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' loadbalance bogus',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("loadbalance", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("loadbalance", body)


SUP = "\u00b2"  # a superscript digit: Python's int() would take it, Go's Atoi does not


async def test_weight_file_with_garbage(tmp_path):
    """A weighted loadbalance file with junk: a clean error at setup, or a running server."""
    p = tmp_path / "w"
    p.write_bytes(b"\xff\xfe\nexample.org\n300.1.1.1 5\n1.2.3.4 abc\n1.2.3.4 -1\n1.2.3.4 99999999999\n")
    text = block(f" loadbalance weighted {p}\n whoami")
    msg = load(text)
    if msg is not None:
        check_message("loadbalance", msg)
    else:
        async with running(text) as srv:
            assert (await query(srv.port(), "example.org", "A")).rcode() == 0


async def test_weight_file_turning_to_garbage_at_runtime(tmp_path):
    """loadbalance weighted: a bad weight file at reload is logged; the server keeps serving."""
    p = tmp_path / "w"
    p.write_text("w.example.\n10.0.0.1 100\n10.0.0.2 1\n")
    hosts = "  10.0.0.1 w.example.\n  10.0.0.2 w.example.\n"
    panics = metrics.panics_total.get()
    async with running(block(f" hosts {{\n{hosts} }}\n loadbalance weighted {p} {{\n  reload 50ms\n }}")) as srv:
        port = srv.port()
        for content in (f"w.example.\n10.0.0.1 {SUP}\n", "\xff\xfe garbage", "w.example.\n10.0.0.1 0\n", None,
                        "w.example.\n10.0.0.2 100\n10.0.0.1 1\n"):
            if content is None:
                p.unlink()
            else:
                p.write_text(content)
            await trio.sleep(0.2)
            m = await query(port, "w.example.", "A")
            assert m.rcode() == 0 and len(m.answer[0]) == 2, content
    assert metrics.panics_total.get() == panics
