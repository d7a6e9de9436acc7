"""log: Corefile parsing and its errors."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

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


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("log", BROKEN)


async def test_log_bad_class_is_an_error():
    with pytest.raises(StartupError, match="plugin/log: invalid Class: everything"):
        async with running(". {\n log {\n  class everything\n }\n}\n"):
            pass
