"""autopath: broken Corefiles are refused with one clean `plugin/autopath: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import running
from pycoredns.plugins.autopath import parse_resolv_conf

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'autopath',
    'autopath /nonexistent',
    'autopath @',
    'autopath bad..zone /etc/resolv.conf',
    'autopath /etc',
    'autopath example.org /nonexistent',
    'autopath ""',
    'autopath "" /etc/resolv.conf',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' autopath',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("autopath", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("autopath", body)


def test_parse_resolv_conf(tmp_path: Path) -> None:
    p = tmp_path / "r"
    p.write_text("; c\nsearch A.example b.example.\ndomain only.example\n")
    assert parse_resolv_conf(str(p)) == ["only.example."]
    p.write_text("domain x.example\n# search ignored.example\nsearch Y.example. z.example\n")
    assert parse_resolv_conf(str(p)) == ["y.example.", "z.example."]
    p.write_text("nameserver 127.0.0.1\n")
    assert parse_resolv_conf(str(p)) == []


@pytest.mark.parametrize(("line", "error"), [
    ("autopath", "no resolv-conf specified"),
    ("autopath /nonexistent/resolv.conf",
     'failed to parse "/nonexistent/resolv.conf": open /nonexistent/resolv.conf: no such file or directory'),
])
async def test_config_errors(line: str, error: str) -> None:
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n    {line}\n    whoami\n}}\n"):
            pass
    assert str(ei.value) == f"plugin/autopath: {error}"
