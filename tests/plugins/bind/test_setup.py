"""bind: broken Corefiles are refused with one clean `plugin/bind: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'bind',
    'bind 300.1.1.1',
    'bind 127.0.0.1 {\n except\n }',
    'bind 127.0.0.1 {\n except 300.1.1.1\n }',
    'bind 127.0.0.1 {\n bogus\n }',
    'bind ::1%',
    'bind 127.0.0.1/8',
    'bind nosuchiface0',
    'bind ""',
    'bind 127.0.0.1 {\n except ""\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' bind',
    ' bind 300.1.1.1',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("bind", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("bind", body)
