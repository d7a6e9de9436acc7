"""bufsize: arguments (CoreDNS names the plugin twice in these errors)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError


@pytest.mark.parametrize("arg", ["100", "a", "600 700", "4097", "511"])
async def test_bad_sizes(arg: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n bufsize {arg}\n}}\n", filename="Testfile"):
            pass
    last = arg.split()[-1]
    assert str(e.value) == ("plugin/bufsize: plugin/bufsize: Testfile:2 - Error during parsing: Wrong argument "
                            f"count or unexpected line ending after '{last}'")


BROKEN: list[str] = [
    'bufsize 100',
    'bufsize a',
    'bufsize 600 700',
    'bufsize 4097',
    'bufsize 511',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/bufsize: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("bufsize", BROKEN)
