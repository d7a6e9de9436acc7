"""prometheus: broken Corefiles are refused with one clean `plugin/prometheus: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import running

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'prometheus 300.1.1.1:9153',
    'prometheus :99999',
    'prometheus a b',
    'prometheus {\n tls\n }',
    'prometheus :abc',
    'prometheus {\n bogus\n }',
    'prometheus\n prometheus',
    'prometheus ""',
    'prometheus :²',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' prometheus a b',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("prometheus", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("prometheus", body)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("prometheus localhost", "plugin/prometheus: address localhost: missing port in address"),
        ("prometheus a:1 b:2", "Wrong argument count or unexpected line ending after 'b:2'"),
        ("prometheus 127.0.0.1:0 {\n  bogus\n }", "Error during parsing: unknown option: bogus"),
        ("prometheus 127.0.0.1:0\n prometheus 127.0.0.1:0",
         "plugin/prometheus: this plugin can only be used once per Server Block"),
    ],
)
async def test_config_errors(line, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n {line}\n whoami\n}}\n"):
            pass
    assert message in str(ei.value)
