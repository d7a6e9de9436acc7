"""view: arguments, expression errors (expr-lang's format) and the shared-zone overlap rule."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


@pytest.mark.parametrize(("body", "error"), [
    ("view", "plugin/view: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending "
             "after 'view'"),
    ("view a {\n foo\n}", "plugin/view: Testfile:3 - Error during parsing: unknown property 'foo'"),
    ("view a {\n expr foo()\n}", "plugin/view: unknown name foo (1:1)\n | foo()\n | ^"),
    ("view a {\n expr type() ==\n}", "plugin/view: unexpected token EOF (1:9)\n | type() ==\n | ........^"),
    ("view a {\n expr type() == == 1\n}",
     'plugin/view: unexpected token Operator("==") (1:11)\n | type() == == 1\n | ..........^'),
    ("view a\n view b", "plugin/view: this plugin can only be used once per Server Block"),
])
async def test_bad_arguments(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


async def test_same_zone_needs_a_view() -> None:
    with pytest.raises(StartupError) as e:
        async with running(". {\n whoami\n}\n. {\n whoami\n}\n"):
            pass
    assert "- it is already defined" in str(e.value)
    async with running(". {\n view a {\n  expr true\n }\n whoami\n}\n. {\n whoami\n}\n"):
        pass


BROKEN: list[str] = [
    'view',
    'view a b',
    'view a {\n  foo\n }',
    'view a\n view b',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/view: ...` line. Expression
errors are left out: like expr-lang's (and CoreDNS's) they end with the source and a caret line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("view", BROKEN)
