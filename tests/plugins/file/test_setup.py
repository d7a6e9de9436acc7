"""file: arguments and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

from .zones import write_zone


async def _error(corefile: str) -> str:
    with pytest.raises(StartupError) as e:
        async with running(corefile, filename="Testfile"):
            pass
    return str(e.value)


async def test_missing_file_argument() -> None:
    assert await _error("example.org {\n file\n}\n") == (
        "plugin/file: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'file'")


async def test_unreadable_file_is_fatal_only_without_reload(tmp_path) -> None:
    missing = tmp_path / "nope"
    async with running(f"example.org {{\n file {missing}\n}}\n"):
        pass  # a warning: retried on every reload tick
    assert await _error(f"example.org {{\n file {missing} {{\n  reload 0\n }}\n}}\n") == (
        f"plugin/file: plugin/file: open {missing}: no such file or directory")


async def test_zone_without_soa(tmp_path) -> None:
    (tmp_path / "db").write_text("$ORIGIN example.org.\n@ 3600 IN A 192.0.2.1\n")
    assert await _error(f"example.org {{\n file {tmp_path / 'db'}\n}}\n") == (
        f'plugin/file: file "{tmp_path / "db"}" has no SOA record for origin example.org.')


async def test_unparsable_zone(tmp_path) -> None:
    (tmp_path / "db").write_text("@ 3600 IN SOA ns1 admin 1 2 3 4 5\n@ IN BOGUS foo\n")
    msg = await _error(f"example.org {{\n file {tmp_path / 'db'}\n}}\n")
    assert msg.startswith(f'plugin/file: failed to parse file "{tmp_path / "db"}" for origin example.org. with error ')


@pytest.mark.parametrize(("block", "error"), [
    ("reload", "plugin/file: reload duration value is expected"),
    ("reload abc", 'plugin/file: plugin/file: time: invalid duration "abc"'),
    ("foo", "plugin/file: Testfile:3 - Error during parsing: unknown property 'foo'"),
])
async def test_bad_options(tmp_path, block: str, error: str) -> None:
    path = write_zone(tmp_path)
    assert await _error(f"example.org {{\n file {path} {{\n  {block}\n }}\n}}\n") == error


async def test_relative_path_uses_root(tmp_path) -> None:
    write_zone(tmp_path)
    async with running(f"example.org {{\n root {tmp_path}\n file db.example.org\n}}\n"):
        pass


BROKEN: list[str] = [
    'file',
    'file /nonexistent/db {\n  reload 0\n }',
    'file /nonexistent/db {\n  reload\n }',
    'file /nonexistent/db {\n  reload abc\n }',
    'file /nonexistent/db {\n  foo\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/file: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("file", BROKEN)


async def test_serial_zero_does_not_load(tmp_path) -> None:
    """CoreDNS's setup reads the zone with serial 0 as the "current" one: a zone with serial 0 is refused."""
    (tmp_path / "db").write_text("$ORIGIN example.org.\n@ 300 IN SOA ns admin 0 2 3 4 5\n@ 300 IN NS ns\n")
    assert await _error(f"example.org {{\n file {tmp_path / 'db'}\n}}\n") == (
        f"plugin/file: no change in SOA serial for origin example.org. in file {tmp_path / 'db'}, with 0 SOA serial")
