"""cache: broken Corefiles are refused with one clean `plugin/cache: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail, load
from conftest import running

from pycoredns.instance import StartupError

from .helpers import cache_of

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


# -- configuration -------------------------------------------------------------------------------

ERRORS = [
    ("cache 0", "plugin/cache: cache TTL can not be zero or negative: 0"),
    ("cache -10", "plugin/cache: cache TTL can not be zero or negative: -10"),
    ("cache {\n success\n }", "Wrong argument count or unexpected line ending after 'success'"),
    ("cache {\n success x\n }", 'plugin/cache: strconv.Atoi: parsing "x": invalid syntax'),
    ("cache {\n success 10 0\n }", "plugin/cache: cache TTL can not be zero or negative: 0"),
    ("cache {\n denial 10 5 -1\n }", "plugin/cache: cache min TTL can not be negative: -1"),
    ("cache {\n prefetch\n }", "Wrong argument count or unexpected line ending after 'prefetch'"),
    ("cache {\n prefetch 1 2 3 4\n }", "Wrong argument count or unexpected line ending after '4'"),
    ("cache {\n prefetch -1\n }", "plugin/cache: prefetch amount should be positive: -1"),
    ("cache {\n prefetch 1 10\n }", 'plugin/cache: time: missing unit in duration "10"'),
    ("cache {\n prefetch 1 1m 50\n }", "plugin/cache: last character of percentage should be `%`, but is: '0'"),
    ("cache {\n prefetch 1 1m 5%\n }", "plugin/cache: percentage should fall in range [10, 90]: 5"),
    ("cache {\n prefetch 1 1m 95%\n }", "plugin/cache: percentage should fall in range [10, 90]: 95"),
    ("cache {\n serve_stale -1s\n }", "plugin/cache: invalid negative duration for serve_stale"),
    ("cache {\n serve_stale 1h later\n }", "plugin/cache: invalid value for serve_stale refresh mode: later"),
    ("cache {\n serve_stale 1h immediate 1s 1s 1s\n }", "Wrong argument count"),
    ("cache {\n serve_stale 1h verify 1s 1s 10m\n }",
     "plugin/cache: serve_stale failure recheck over 5 minutes is not permitted"),
    ("cache {\n serve_stale_policy prefer_positive\n }", "plugin/cache: serve_stale_policy requires serve_stale"),
    ("cache {\n servfail\n }", "Wrong argument count or unexpected line ending after 'servfail'"),
    ("cache {\n servfail -1s\n }", "plugin/cache: invalid negative ttl for servfail"),
    ("cache {\n servfail 6m\n }", "plugin/cache: caching SERVFAIL responses over 5 minutes is not permitted"),
    ("cache {\n disable\n }", "Wrong argument count or unexpected line ending after 'disable'"),
    ("cache {\n disable both\n }", 'plugin/cache: cache type for disable must be "success" or "denial"'),
    ("cache {\n keepttl 1\n }", "Wrong argument count or unexpected line ending after '1'"),
    ("cache {\n bogus\n }", "Wrong argument count or unexpected line ending after 'bogus'"),
    ("cache\n cache", "plugin/cache: this plugin can only be used once per Server Block"),
]


@pytest.mark.parametrize(("snippet", "message"), ERRORS)
async def test_config_errors(snippet: str, message: str) -> None:
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n {snippet}\n whoami\n}}\n"):
            pass
    assert message in str(ei.value)


async def test_config_options_parse() -> None:
    corefile = """example.org {
        cache 300 sub.example.org other.net {
            success 5000 200 10
            denial 2500 100 1
            prefetch 3 30s 20%
            serve_stale 2h verify 150ms 30s 1m
            serve_stale_policy prefer_positive
            servfail 10s
            disable denial a.sub.example.org
            keepttl
        }
        whoami
    }
    """
    async with running(corefile) as srv:
        c = cache_of(srv)
        assert c.zones == ["sub.example.org.", "other.net."]
        assert (c.pcache.capacity, c.pttl, c.minpttl) == (4864, 200, 10)
        assert (c.ncache.capacity, c.nttl, c.minnttl) == (2304, 100, 1)
        assert (c.prefetch, c.prefetch_window, c.percentage) == (3, 30.0, 20)
        assert (c.stale_up_to, c.verify, c.verify_timeout, c.stale_ttl, c.failure_recheck) == (7200, True, 0.15, 30, 60)
        assert c.prefer_positive and c.keepttl and c.failttl == 10
        assert c.nexcept == ["a.sub.example.org."] and c.pexcept == []
    async with running(". {\n cache\n whoami\n}\n") as srv:
        c = cache_of(srv)
        assert (c.pcache.capacity, c.pttl, c.nttl, c.minpttl, c.failttl) == (9984, 3600, 1800, 5, 5)
        assert (c.prefetch, c.stale_up_to, c.keepttl, c.zones) == (0, 0, False, ["."])
