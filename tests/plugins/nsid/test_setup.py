"""nsid: arguments."""

from __future__ import annotations

import pytest
from conftest import running

from pycoredns.instance import StartupError


async def test_once_per_block() -> None:
    with pytest.raises(StartupError) as e:
        async with running(". {\n nsid a\n nsid b\n}\n"):
            pass
    assert str(e.value) == "plugin/nsid: this plugin can only be used once per Server Block"
