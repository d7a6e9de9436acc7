"""metadata: arguments."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


async def test_second_metadata_is_an_error() -> None:
    with pytest.raises(StartupError) as e:
        async with running(". {\n metadata\n metadata\n}\n", filename="Testfile"):
            pass
    assert str(e.value) == ("plugin/metadata: Testfile:3 - Error during parsing: Wrong argument count or unexpected "
                            "line ending after 'metadata'")


async def test_zones_and_empty_block_accepted() -> None:
    async with running(". {\n metadata example.org 10.0.0.0/8 {\n }\n whoami\n}\n"):
        pass


BROKEN: list[str] = [
    'metadata\n metadata',
    'metadata a {\n  b\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/metadata: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("metadata", BROKEN)
