"""rewrite: broken Corefiles are refused with one clean `plugin/rewrite: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'rewrite',
    'rewrite name',
    'rewrite name a',
    'rewrite name regex ( x',
    'rewrite name bogus a b',
    'rewrite type A BOGUS',
    'rewrite class IN BOGUS',
    'rewrite ttl a abc',
    'rewrite ttl a 5-2',
    'rewrite ttl a -5',
    'rewrite edns0 local set 0xZZ 0x00',
    'rewrite edns0 local set 1',
    'rewrite edns0 subnet set 33 0',
    'rewrite edns0 subnet set abc 0',
    'rewrite edns0 bogus',
    'rewrite edns0 nsid bogus',
    'rewrite rcode a BOGUS',
    'rewrite stop name regex (.*) {1}',
    'rewrite name regex (.*) x {\n answer name\n }',
    'rewrite bogus',
    'rewrite name exact a. b. answer bogus',
    'rewrite cname exact a b',
    'rewrite name suffix',
    'rewrite name regex (.*) x answer name ( y',
    'rewrite name regex (.*) x answer value ( y',
    'rewrite name exact a. b. answer auto x',
    'rewrite continue',
    'rewrite stop',
    'rewrite edns0 local set 99999999 0x00',
    'rewrite edns0 local set 1 0xZ',
    'rewrite name substring',
    'rewrite name exact ' + 'a' * 300 + ' b',
    'rewrite name regex (.*) {99}',
    'rewrite name "" x',
    'rewrite name exact "" ""',
    'rewrite name regex "" ""',
    'rewrite "" "" ""',
    'rewrite edns0 local set "" ""',
    'rewrite ttl "" ""',
    'rewrite type "" ""',
    'rewrite rcode "" ""',
    'rewrite ttl a ²',
    'rewrite ttl a 1-²',
    'rewrite edns0 subnet set ² 0',
    'rewrite type A TYPE²',
    'rewrite class IN CLASS²',
    'rewrite rcode a ²',
    'rewrite name exact a\\²²². b.',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' rewrite name',
    ' rewrite name regex ( x',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("rewrite", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("rewrite", body)
