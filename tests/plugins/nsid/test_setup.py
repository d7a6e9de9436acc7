"""nsid: arguments."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


async def test_once_per_block() -> None:
    with pytest.raises(StartupError) as e:
        async with running(". {\n nsid a\n nsid b\n}\n"):
            pass
    assert str(e.value) == "plugin/nsid: this plugin can only be used once per Server Block"


BROKEN: list[str] = [
    'nsid a\n nsid b',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/nsid: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("nsid", BROKEN)
