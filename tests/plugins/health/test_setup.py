"""health: broken Corefiles are refused with one clean `plugin/health: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'health 300.1.1.1:8080',
    'health :99999',
    'health a b',
    'health {\n lameduck abc\n }',
    'health {\n lameduck\n }',
    'health {\n bogus\n }',
    'health :abc',
    'health {\n lameduck 1s 2s\n }',
    'health ""',
    'health {\n lameduck ""\n }',
    'health :²',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' health a b',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("health", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("health", body)
