"""autopath: broken Corefiles are refused with one clean `plugin/autopath: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'autopath',
    'autopath /nonexistent',
    'autopath @',
    'autopath bad..zone /etc/resolv.conf',
    'autopath /etc',
    'autopath example.org /nonexistent',
    'autopath ""',
    'autopath "" /etc/resolv.conf',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' autopath',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("autopath", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("autopath", body)
