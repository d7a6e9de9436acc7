"""rewrite: broken Corefiles are refused with one clean `plugin/rewrite: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import running

from pycoredns.instance import StartupError

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


@pytest.mark.parametrize(("line", "error"), [
    ("rewrite", "no rule type specified for rewrite"),
    ("rewrite stop", "stop rule must begin with a rule type"),
    ("rewrite foo a b", 'invalid rule type "foo"'),
    ("rewrite name a", "too few arguments for a name rule"),
    ("rewrite name fuzzy a b",
     "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: fuzzy"),
    ("rewrite name regex ( b", "invalid regex matching pattern: ("),
    ("rewrite name regex (a) {1}{2}", "the rewrite regex pattern ({1}{2}) uses more subexpressions than its "
                                      "corresponding matching regex pattern ((a))"),
    ("rewrite name regex " + "a" * 10001 + " b", "regex pattern too long: 10001 > 10000"),
    ("rewrite name regex a b answer auto answer name x y",
     "auto name answer rule cannot be combined with explicit name anwer rules"),
    ("rewrite name regex a b answer foo x y", 'invalid type "foo" for answer rule for regex rule'),
    ("rewrite name regex a b answer name x", "name answer rule for regex rule: 2 arguments required"),
    ("rewrite name regex a b extra x",
     "exceeded the number of arguments for a non-answer rule argument for regex rule"),
    ("rewrite answer name a b", "response rewrites must begin with a name rule"),
    ("rewrite type A", "type rules must have exactly two arguments"),
    ("rewrite type A BOGUS", 'invalid type "BOGUS"'),
    ("rewrite class IN XX", 'invalid class "XX"'),
    ("rewrite ttl a.example. x", "invalid TTL 'x' for a ttl rule"),
    ("rewrite ttl a.example. 40-30", "invalid TTL '40-30' for a ttl rule"),
    ("rewrite ttl a.example. -", "invalid TTL '-' for a ttl rule"),
    ("rewrite ttl a.example.", "too few (1) arguments for a ttl rule"),
    ("rewrite ttl fuzzy a. 3", "ttl rule supports only exact, prefix, suffix, substring, and regex name matching"),
    ("rewrite ttl regex ( 3", "invalid regex pattern in a ttl rule: ("),
    ("rewrite rcode a. FOO NOERROR", "invalid matching RCODE 'FOO' for a rcode rule"),
    ("rewrite rcode a. NXDOMAIN 99", "invalid replacement RCODE '99' for a rcode rule"),
    ("rewrite cname fuzzy a b", "unknown cname rewrite type: fuzzy"),
    ("rewrite cname a", "too few (1) arguments for a cname rule"),
    ("rewrite edns0 local", "too few arguments for an EDNS0 rule"),
    ("rewrite edns0 local frob 1 2", 'invalid action: "frob"'),
    ("rewrite edns0 local set 0xffee", "EDNS0 local rules require exactly three args"),
    ("rewrite edns0 local set 0xffee {bogus}", 'unsupported variable name "{bogus}"'),
    ("rewrite edns0 nsid set x", "EDNS0 NSID rules do not accept args"),
    ("rewrite edns0 subnet set 33 56", "invalid IPv4 bit mask length 33"),
    ("rewrite edns0 subnet set 24 129", "invalid IPv6 bit mask length 129"),
    ("rewrite edns0 foo set", 'invalid rule type "foo"'),
])
async def test_config_errors(line: str, error: str) -> None:
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n    {line}\n    whoami\n}}\n"):
            pass
    assert str(ei.value) == f"plugin/rewrite: {error}"
