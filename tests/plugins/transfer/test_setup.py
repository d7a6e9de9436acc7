"""transfer: arguments and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

P2 = "plugin/transfer: plugin/transfer: Testfile:"


@pytest.mark.parametrize(("body", "error"), [
    ("transfer", P2 + "2 - Error during parsing: 'to' is required"),
    ("transfer {\n to\n}", "plugin/transfer: Testfile:3 - Error during parsing: Wrong argument count or "
                           "unexpected line ending after 'to'"),
    ("transfer {\n to foo\n}", "plugin/transfer: must specify an IP address: `foo'"),
    ("transfer {\n to 10.0.0.1\n source 10.0.0.2\n source 10.0.0.2\n}",
     P2 + "5 - Error during parsing: source already specified"),
    ("transfer {\n to 10.0.0.1\n source nope\n}", P2 + "4 - Error during parsing: invalid source address \"nope\""),
    ("transfer {\n bar\n}", P2 + "3 - Error during parsing: unknown property \"bar\""),
])
async def test_bad_arguments(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f"example.org {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


async def test_addresses_normalised() -> None:
    async with running("example.org {\n transfer {\n  to * 10.0.0.1 [::1]:5300\n }\n}\n") as srv:
        handler = srv.instance.blocks[0].handler("transfer")
        assert handler.xfrs[0].to == ["*", "10.0.0.1:53", "[::1]:5300"]


BROKEN: list[str] = [
    'transfer',
    'transfer {\n  to\n }',
    'transfer {\n  to foo\n }',
    'transfer {\n  to 10.0.0.1\n  source 10.0.0.2\n  source 10.0.0.2\n }',
    'transfer {\n  to 10.0.0.1\n  source nope\n }',
    'transfer {\n  bar\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/transfer: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("transfer", BROKEN)
