"""hosts: broken Corefiles are refused with one clean `plugin/hosts: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'hosts {\n ttl 0\n }',
    'hosts {\n ttl abc\n }',
    'hosts {\n ttl 99999\n }',
    'hosts {\n ttl\n }',
    'hosts {\n reload abc\n }',
    'hosts {\n reload -1s\n }',
    'hosts {\n reload\n }',
    'hosts {\n fallthrough\n bogus\n }',
    'hosts /etc/hosts bad..zone',
    'hosts\n hosts',
    'hosts /tmp/x\x00y',
    'hosts {\n ttl ""\n }',
    'hosts {\n reload ""\n }',
    'hosts {\n "" ""\n }',
    'hosts {\n ttl ²\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' hosts {\n  ttl 0\n }',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("hosts", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("hosts", body)
