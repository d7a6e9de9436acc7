"""errors: broken Corefiles are refused with one clean `plugin/errors: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load

BROKEN: list[str] = [
    'errors stdout x',
    'errors bogus',
    'errors {\n consolidate\n }',
    'errors {\n consolidate abc .*\n }',
    'errors {\n consolidate 1m (\n }',
    'errors {\n consolidate 1m .* bogus\n }',
    'errors {\n consolidate 1m\n }',
    'errors {\n consolidate -1m .*\n }',
    'errors {\n stacktrace x\n }',
    'errors {\n consolidate 1m a error x y\n }',
    'errors {\n consolidate 1m ' + 'a' * 10001 + '\n }',
    'errors\n errors',
    'errors {\n consolidate "" ""\n }',
    'errors {\n consolidate 1m ""\n }',
    'errors {\n consolidate ²m .*\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' errors {\n  consolidate 1m (\n }',
]
"""Refused for sure by CoreDNS too."""

EXACT: dict[str, str] = {
    '. {\n errors {\n  bogus\n }\n}\n':
        "plugin/errors: Corefile:3 - Syntax error: Unexpected token 'bogus', expecting 'Unknown field bogus'",
}
"""Texts the reference gives."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("errors", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("errors", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected
