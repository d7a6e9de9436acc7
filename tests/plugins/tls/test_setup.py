"""tls: arguments and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running
from pycoredns_conformance.upstream import make_tls_cert

from pycoredns.instance import StartupError


async def _error(body: str) -> str:
    with pytest.raises(StartupError) as e:
        async with running(f"tls://.:0 {{\n{body}\n}}\n", filename="Testfile"):
            pass
    return str(e.value)


@pytest.mark.parametrize(("body", "error"), [
    ("tls a", "plugin/tls: plugin/tls: Testfile:2 - Error during parsing: Wrong argument count or unexpected line "
              "ending after 'a'"),
    ("tls a b c d", "plugin/tls: plugin/tls: Testfile:2 - Error during parsing: Wrong argument count or unexpected "
                    "line ending after 'd'"),
    ("tls /nope/cert /nope/key", "plugin/tls: could not load TLS cert: open /nope/cert: no such file or directory"),
])
async def test_bad_arguments(body: str, error: str) -> None:
    assert await _error(body) == error


@pytest.mark.parametrize(("block", "error"), [
    ("client_auth", "Wrong argument count or unexpected line ending after 'client_auth'"),
    ("client_auth maybe", "unknown authentication type 'maybe'"),
    ("bogus", "unknown option 'bogus'"),
])
async def test_bad_options(tmp_path, block: str, error: str) -> None:
    cert, key = make_tls_cert(str(tmp_path))
    expected = f"plugin/tls: Testfile:3 - Error during parsing: {error}"
    assert await _error(f"tls {cert} {key} {{\n {block}\n}}") == expected


BROKEN: list[str] = [
    'tls a',
    'tls a b c d',
    'tls /nope/cert /nope/key',
    'tls',
    'tls /nope/cert /nope/key {\n  client_auth maybe\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/tls: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("tls", BROKEN)
