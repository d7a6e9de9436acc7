"""ready: broken Corefiles are refused with one clean `plugin/ready: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'ready a b',
    'ready :99999',
    'ready {\n bogus\n }',
    'ready 300.1.1.1:8181',
    'ready\n ready',
    'ready ""',
    'ready :²',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' ready a b',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("ready", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("ready", body)
