"""chaos: broken Corefiles are refused with one clean `plugin/chaos: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

from broken_corefiles import check_broken

BROKEN: list[str] = [
    'chaos a {\n b\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("chaos", BROKEN)
