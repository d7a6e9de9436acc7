"""reload: Corefile parsing (interval, jitter, errors) and which setup's period applies."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load
from conftest import running
from pycoredns.plugins import reload as reload_plugin

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'reload ""',
    'reload 1s',
    'reload abc',
    'reload 3s 0.5s',
    'reload 3s -1s',
    'reload 3s 1s 1s',
    'reload 3s ""',
    'reload -3s',
    'reload 9999999999999999h',
    'reload "" ""',
    'reload ²s',
]


MUST_FAIL: list[str] = [
    ' reload ""',
    ' reload abc',
]


EXACT: dict[str, str] = {
    '. {\n reload 1s\n}\n': 'plugin/reload: interval value must be greater or equal to 2s',
}


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("reload", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("reload", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected


@pytest.mark.parametrize("args,error", [
    ("1s", "plugin/reload: interval value must be greater or equal to 2s"),
    ("1999ms", "plugin/reload: interval value must be greater or equal to 2s"),
    ("2s 500ms", "plugin/reload: jitter value must be greater or equal to 1s"),
    ("2s -1s", "plugin/reload: jitter value must be greater or equal to 1s"),
    ("foo", 'plugin/reload: time: invalid duration "foo"'),
    ("10s 5", 'plugin/reload: time: missing unit in duration "5"'),
    ("10s 5s 1s", "plugin/reload: Corefile:2 - Error during parsing: Wrong argument count or unexpected "
                  "line ending after '1s'"),
])
async def test_setup_errors(args, error):
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n reload {args}\n whoami\n}}\n"):
            pass
    assert str(e.value) == error


@pytest.mark.parametrize("args", ["", "2s", "2s 0", "2s 1s", "1m 1h", "30s 15s"])
async def test_setup_accepts(args):
    async with running(f". {{\n reload {args}\n whoami\n}}\n") as srv:
        assert "reload" in srv.instance.scope.state
        assert reload_plugin.poller(srv).running


def test_period_bounds():
    assert reload_plugin.period(2, 0) == 2
    for _ in range(200):
        assert 22.5 <= reload_plugin.period(30, 15) <= 37.5
        assert 3 <= reload_plugin.period(4, 60) <= 5  # jitter capped at INTERVAL/2


async def test_first_line_per_block_and_blocks_ignored():
    """As CoreDNS (one c.Next(), RemainingArgs): later `reload` lines and a `{ }` block are not read."""
    async with running(". {\n reload 3s 0 {\n  anything\n }\n reload 9s 0\n whoami\n}\n") as srv:
        assert srv.instance.scope.state["reload"] == 3


async def test_interval_from_last_setup():
    text = ". {\n reload 2s 0\n whoami\n}\nexample.org {\n reload 7s 0\n whoami\n}\n"
    async with running(text) as srv:
        assert reload_plugin.poller(srv).period == 7


# -- change detection and the swap --------------------------------------------------------------
