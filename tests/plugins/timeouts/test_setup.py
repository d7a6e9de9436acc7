"""timeouts: options, ranges and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

P = "plugin/timeouts: Testfile:3 - Error during parsing: "


@pytest.mark.parametrize(("body", "error"), [
    ("timeouts", "plugin/timeouts: plugin/timeouts: Testfile:2 - Error during parsing: timeouts block with no "
                 "timeouts specified"),
    ("timeouts a", "plugin/timeouts: plugin/timeouts: Testfile:2 - Error during parsing: Wrong argument count or "
                   "unexpected line ending after 'a'"),
    ("timeouts {\n read\n}", P + "Wrong argument count or unexpected line ending after 'read'"),
    ("timeouts {\n read 0.5s\n}", P + "timeout provided '500ms' needs to be between 1 second and 24 hours"),
    ("timeouts {\n idle 25h\n}", P + "timeout provided '25h0m0s' needs to be between 1 second and 24 hours"),
    ("timeouts {\n write abc\n}", P + "failed to parse duration 'abc'"),
    ("timeouts {\n foo 5\n}", P + "unknown option: 'foo'"),
    ("timeouts {\n maxtcpqueries x\n}",
     P + "invalid value for maxtcpqueries 'x': strconv.Atoi: parsing \"x\": invalid syntax"),
    ("timeouts {\n maxtcpqueries -2\n}",
     P + "maxtcpqueries provided '-2' needs to be -1 (unlimited) or a positive integer"),
])
async def test_bad_options(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


async def test_values_reach_the_listener() -> None:
    cf = ". {\n timeouts {\n  read 7\n  write 1m\n  idle 2h\n  maxtcpqueries 3\n }\n whoami\n}\n"
    async with running(cf) as srv:
        lst = srv.instance.first_listener()
        assert (lst.read_timeout, lst.write_timeout, lst.idle_timeout, lst.max_tcp_queries) == (7, 60, 7200, 3)


BROKEN: list[str] = [
    'timeouts',
    'timeouts a',
    'timeouts {\n  read\n }',
    'timeouts {\n  read 0.5s\n }',
    'timeouts {\n  idle 25h\n }',
    'timeouts {\n  write abc\n }',
    'timeouts {\n  foo 5\n }',
    'timeouts {\n  maxtcpqueries x\n }',
    'timeouts {\n  maxtcpqueries -2\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/timeouts: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("timeouts", BROKEN)
