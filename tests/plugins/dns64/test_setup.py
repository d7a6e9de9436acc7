"""dns64: prefixes and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

P = "plugin/dns64: Testfile:"


@pytest.mark.parametrize(("body", "error"), [
    ("dns64 foo", "plugin/dns64: invalid CIDR address: foo"),
    ("dns64 10.0.0.0/8", P + '2 - Error during parsing: invalid netmask 32 IPv6 address: "10.0.0.0/8"'),
    ("dns64 64:ff9b::/100", P + '2 - Error during parsing: invalid prefix length "64:ff9b::/100"'),
    ("dns64 a b", P + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'b'"),
    ("dns64 {\n prefix\n}", P + "3 - Error during parsing: Wrong argument count or unexpected line ending after "
                              "'prefix'"),
    ("dns64 {\n bogus\n}", P + "3 - Error during parsing: unknown property 'bogus'"),
    ("dns64 {\n prefix 64:ff9b::/33\n}", P + '3 - Error during parsing: invalid prefix length "64:ff9b::/33"'),
])
async def test_bad_arguments(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


BROKEN: list[str] = [
    'dns64 foo',
    'dns64 10.0.0.0/8',
    'dns64 64:ff9b::/100',
    'dns64 a b',
    'dns64 {\n  prefix\n }',
    'dns64 {\n  bogus\n }',
    'dns64 {\n  prefix 64:ff9b::/33\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/dns64: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("dns64", BROKEN)
