"""local: Corefile arguments and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


@pytest.mark.parametrize(("body", "error"), [
    ("local foo", "plugin/local: Testfile:2 - Error during parsing: Wrong argument count or unexpected line "
                  "ending after 'foo'"),
    ("local {\n localhost_prefix maybe\n}",
     "plugin/local: Testfile:3 - Error during parsing: localhost_prefix expects 'on' or 'off', got \"maybe\""),
    ("local {\n localhost_prefix\n}", "plugin/local: Testfile:3 - Error during parsing: Wrong argument count "
                                      "or unexpected line ending after 'localhost_prefix'"),
    ("local {\n bar\n}", "plugin/local: Testfile:3 - Error during parsing: unknown property 'bar'"),
])
async def test_bad_arguments(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


async def test_prefix_off_accepted() -> None:
    async with running(". {\n local {\n  localhost_prefix off\n }\n}\n"):
        pass


BROKEN: list[str] = [
    'local foo',
    'local {\n  localhost_prefix maybe\n }',
    'local {\n  localhost_prefix\n }',
    'local {\n  bar\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/local: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("local", BROKEN)
