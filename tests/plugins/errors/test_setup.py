"""errors: Corefile parsing and its errors."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load
from conftest import running

from pycoredns.instance import StartupError

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


MUST_FAIL: list[str] = [
    ' errors {\n  consolidate 1m (\n }',
]


EXACT: dict[str, str] = {
    '. {\n errors {\n  bogus\n }\n}\n':
        "plugin/errors: Corefile:3 - Syntax error: Unexpected token 'bogus', expecting 'Unknown field bogus'",
}


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("errors", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("errors", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected


async def test_errors_unknown_option():
    with pytest.raises(StartupError) as e:
        async with running(". {\n errors {\n  bogus\n }\n}\n"):
            pass
    assert str(e.value) == ("plugin/errors: Corefile:3 - Syntax error: Unexpected token 'bogus', "
                            "expecting 'Unknown field bogus'")


async def test_once_per_block():
    with pytest.raises(StartupError, match="plugin/errors: this plugin can only be used once per Server Block"):
        async with running(". {\n errors\n errors\n}\n"):
            pass
