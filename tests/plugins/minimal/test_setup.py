"""minimal: broken Corefiles are refused with one clean `plugin/minimal: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = []
"""Bodies inside `. { }` that must not load cleanly: none beyond the generic ones
(minimal takes no arguments)."""

MUST_FAIL: list[str] = [
    ' minimal x',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("minimal", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("minimal", body)
