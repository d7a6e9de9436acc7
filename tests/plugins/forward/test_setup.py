"""forward: broken Corefiles are refused with one clean `plugin/forward: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'forward',
    'forward .',
    'forward . 300.1.1.1',
    'forward . 1.1.1.1:99999',
    'forward . 1.1.1.1:-1',
    'forward . 1.1.1.1:abc',
    'forward . https://1.1.1.1/path',
    'forward . foo://1.1.1.1',
    'forward . /nonexistent/resolv.conf',
    'forward bad..zone 1.1.1.1',
    'forward . tls://',
    'forward . 1.1.1.1 {\n max_fails -1\n }',
    'forward . 1.1.1.1 {\n max_fails abc\n }',
    'forward . 1.1.1.1 {\n health_check abc\n }',
    'forward . 1.1.1.1 {\n health_check -1s\n }',
    'forward . 1.1.1.1 {\n health_check 1s bogus\n }',
    'forward . 1.1.1.1 {\n health_check 1s domain\n }',
    'forward . 1.1.1.1 {\n health_check 1s domain bad..name\n }',
    'forward . 1.1.1.1 {\n tls /nonexistent\n }',
    'forward . 1.1.1.1 {\n tls a b c d\n }',
    'forward . 1.1.1.1 {\n expire abc\n }',
    'forward . 1.1.1.1 {\n expire -1s\n }',
    'forward . 1.1.1.1 {\n read_timeout abc\n }',
    'forward . 1.1.1.1 {\n policy bogus\n }',
    'forward . 1.1.1.1 {\n policy\n }',
    'forward . 1.1.1.1 {\n max_concurrent -1\n }',
    'forward . 1.1.1.1 {\n max_concurrent abc\n }',
    'forward . 1.1.1.1 {\n max_concurrent 99999999999999999999999\n }',
    'forward . 1.1.1.1 {\n next BOGUS\n }',
    'forward . 1.1.1.1 {\n next\n }',
    'forward . 1.1.1.1 {\n failover\n }',
    'forward . 1.1.1.1 {\n failover BOGUS\n }',
    'forward . 1.1.1.1 {\n except\n }',
    'forward . 1.1.1.1 {\n except bad..zone\n }',
    'forward . 1.1.1.1 {\n force_tcp x\n }',
    'forward . 1.1.1.1 {\n max_idle_conns -1\n }',
    'forward . 1.1.1.1 {\n max_connect_attempts abc\n }',
    'forward . 1.1.1.1 {\n tls_servername\n }',
    (
        'forward . 127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 ' +
        '127.0.0.7 127.0.0.8 127.0.0.9 127.0.0.10 127.0.0.11 127.0.0.12 127.0.0' +
        '.13 127.0.0.14 127.0.0.15 127.0.0.16 127.0.0.17 127.0.0.18 127.0.0.19'
    ),
    'forward . [::1',
    'forward . 1.1.1.1\n forward . 8.8.8.8',
    'forward . unix://',
    'forward . dns://:53',
    'forward . /tmp/x\x00y',
    'forward . ""',
    'forward "" 1.1.1.1',
    'forward . 1.1.1.1 {\n tls /tmp/x\x00y /tmp/x\x00y /tmp/x\x00y\n }',
    'forward . 1.1.1.1 {\n tls_servername ""\n }',
    'forward . 1.1.1.1 {\n health_check ""\n }',
    'forward . 1.1.1.1 {\n except ""\n }',
    'forward . 1.1.1.1 {\n next ""\n }',
    'forward . 1.1.1.1:²',
    'forward . 1.1.1.1 {\n max_fails ²\n }',
    'forward . 1.1.1.1 {\n max_concurrent ²\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' forward .',
    ' forward . 1.1.1.1 {\n  policy bogus\n }',
    ' forward . 1.1.1.1 {\n  max_fails abc\n }',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("forward", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("forward", body)
