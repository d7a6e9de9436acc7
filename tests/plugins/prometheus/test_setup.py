"""prometheus: broken Corefiles are refused with one clean `plugin/prometheus: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'prometheus 300.1.1.1:9153',
    'prometheus :99999',
    'prometheus a b',
    'prometheus {\n tls\n }',
    'prometheus :abc',
    'prometheus {\n bogus\n }',
    'prometheus\n prometheus',
    'prometheus ""',
    'prometheus :²',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' prometheus a b',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("prometheus", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("prometheus", body)
