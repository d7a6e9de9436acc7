"""k8s_external: arguments and CoreDNS's error texts."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken
from conftest import running

from pycoredns.instance import StartupError

P = "plugin/k8s_external: Testfile:3 - Error during parsing: "


@pytest.mark.parametrize(("body", "error"), [
    ("k8s_external", "plugin/k8s_external: kubernetes plugin not loaded"),
    ("k8s_external {\n ttl\n}", P + "Wrong argument count or unexpected line ending after 'ttl'"),
    ("k8s_external {\n ttl x\n}", 'plugin/k8s_external: strconv.Atoi: parsing "x": invalid syntax'),
    ("k8s_external {\n ttl 3601\n}", P + "ttl must be in range [0, 3600]: 3601"),
    ("k8s_external {\n apex\n}", P + "Wrong argument count or unexpected line ending after 'apex'"),
    ("k8s_external {\n foo\n}", P + "unknown property 'foo'"),
])
async def test_bad_arguments(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f"example.com {{\n{body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == error


BROKEN: list[str] = [
    'k8s_external {\n  ttl\n }',
    'k8s_external {\n  ttl x\n }',
    'k8s_external {\n  ttl 3601\n }',
    'k8s_external {\n  apex\n }',
    'k8s_external {\n  foo\n }',
]
"""Bodies inside `. { }` that CoreDNS refuses (their exact texts are checked above); with the generic
arguments of tests/broken_corefiles.py each must give one clean `plugin/k8s_external: ...` line."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("k8s_external", BROKEN)
