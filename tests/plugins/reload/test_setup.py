"""reload: broken Corefiles are refused with one clean `plugin/reload: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load

BROKEN: list[str] = [
    'reload ""',
    'reload 1s',
    'reload abc',
    'reload 3s 0.5s',
    'reload 3s -1s',
    'reload 3s 1s 1s',
    'reload 3s ""',
    'reload -3s',
    'reload 9999999999999999h',
    'reload "" ""',
    'reload ²s',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' reload ""',
    ' reload abc',
]
"""Refused for sure by CoreDNS too."""

EXACT: dict[str, str] = {
    '. {\n reload 1s\n}\n': 'plugin/reload: interval value must be greater or equal to 2s',
}
"""Texts the reference gives."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("reload", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("reload", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected
