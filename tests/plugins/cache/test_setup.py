"""cache: broken Corefiles are refused with one clean `plugin/cache: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load

BROKEN: list[str] = [
    'cache 0',
    'cache -1',
    'cache abc',
    'cache 99999999999999999999999',
    'cache 30 bad..zone',
    'cache {\n success\n }',
    'cache {\n success abc\n }',
    'cache {\n success 0\n }',
    'cache {\n success 10 abc\n }',
    'cache {\n success 10 -1\n }',
    'cache {\n denial -1\n }',
    'cache {\n denial 10 20 30\n }',
    'cache {\n prefetch 0\n }',
    'cache {\n prefetch abc\n }',
    'cache {\n prefetch 10 1x\n }',
    'cache {\n prefetch 10 1m 200%\n }',
    'cache {\n prefetch 10 1m abc%\n }',
    'cache {\n prefetch 10 1m 10\n }',
    'cache {\n prefetch 10 -1m\n }',
    'cache {\n serve_stale -1s\n }',
    'cache {\n serve_stale 1h bogus\n }',
    'cache {\n serve_stale abc\n }',
    'cache {\n serve_stale_policy\n }',
    'cache {\n servfail 6m\n }',
    'cache {\n servfail -1s\n }',
    'cache {\n servfail abc\n }',
    'cache {\n disable bogus\n }',
    'cache {\n disable\n }',
    'cache {\n disable success bad..zone\n }',
    'cache {\n keepttl x\n }',
    'cache {\n success 10 10 10 10\n }',
    'cache {\n prefetch\n }',
    'cache 30\n cache 60',
    'cache 30 ""',
    'cache {\n success ""\n }',
    'cache {\n prefetch 10 ""\n }',
    'cache {\n serve_stale ""\n }',
    'cache ²',
    'cache {\n success ²\n }',
    'cache {\n prefetch 10 1m ²%\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' cache -1',
    ' cache {\n  servfail 6m\n }',
]
"""Refused for sure by CoreDNS too."""

EXACT: dict[str, str] = {
    '. {\n cache 0\n}\n': 'plugin/cache: cache TTL can not be zero or negative: 0',
    '. {\n cache 30\n cache 60\n}\n': 'plugin/cache: this plugin can only be used once per Server Block',
}
"""Texts the reference gives."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("cache", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("cache", body)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str) -> None:
    assert load(text) == expected
