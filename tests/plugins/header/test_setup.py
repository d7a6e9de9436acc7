"""header: rules and CoreDNS's error texts (rule errors carry no file:line)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


@pytest.mark.parametrize(("body", "error"), [
    ("header", "plugin/header: Testfile:2 - Error during parsing: Wrong argument count or unexpected line "
               "ending after 'header'"),
    ("header {\n}", "plugin/header: Testfile:3 - Error during parsing: Wrong argument count or unexpected line "
                    "ending after '}'"),
    ("header {\n foo set aa\n}", "plugin/header: setting up rule: invalid selector=foo should be query or response"),
    ("header {\n query\n}", "plugin/header: setting up rule: no flag action provided"),
    ("header {\n query set\n}",
     "plugin/header: setting up rule: invalid length for flags, at least one should be provided"),
    ("header {\n query toggle aa\n}",
     "plugin/header: setting up rule: unknown flag action=toggle, should be set or clear"),
    ("header {\n response set AD\n}", "plugin/header: setting up rule: unknown/unsupported flag=ad"),
])
async def test_bad_rules(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


BROKEN: list[str] = [
    'header',
    'header {\n }',
    'header {\n  foo set aa\n }',
    'header {\n  query\n }',
    'header {\n  query set\n }',
    'header {\n  query toggle aa\n }',
    'header {\n  response set ad\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/header: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("header", BROKEN)
