"""loop: Corefile parsing and its errors."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import running

from pycoredns.instance import StartupError

BROKEN: list[str] = []


MUST_FAIL: list[str] = [
    ' loop x',
]


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("loop", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("loop", body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (" loop 1", "Wrong argument count or unexpected line ending after '1'"),
        (" loop\n loop", "plugin/loop: this plugin can only be used once per Server Block"),
    ],
)
async def test_config_errors(body, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n{body}\n whoami\n}}\n"):
            pass
    assert message in str(ei.value)
