"""log: broken Corefiles are refused with one clean `plugin/log: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

from broken_corefiles import check_broken

BROKEN: list[str] = [
    'log {\n class bogus\n }',
    'log {\n class\n }',
    'log . {\n bogus\n }',
    'log . {}',
    'log . "{bogus}" x',
    'log {\n class success x\n }',
    'log "" ""',
    'log . ""',
    'log {\n class ""\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("log", BROKEN)
