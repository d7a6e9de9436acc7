"""whoami: broken Corefiles are refused with one clean `plugin/whoami: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load

BROKEN: list[str] = []
"""Bodies inside `. { }` that must not load cleanly: none beyond the generic ones
(whoami takes no arguments)."""

MUST_FAIL: list[str] = [
    ' whoami x',
]
"""Refused for sure by CoreDNS too."""

EXACT: dict[str, str] = {
    '. {\n whoami x\n}\n':
        "plugin/whoami: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'x'",
}
"""Texts the reference gives."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("whoami", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("whoami", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected
