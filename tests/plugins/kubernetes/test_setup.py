"""kubernetes: broken Corefiles are refused with one clean `plugin/kubernetes: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'kubernetes {\n pods bogus\n }',
    'kubernetes {\n pods\n }',
    'kubernetes {\n namespaces\n }',
    'kubernetes {\n endpoint\n }',
    'kubernetes {\n endpoint a b\n }',
    'kubernetes {\n endpoint ::not a url\n }',
    'kubernetes {\n tls a\n }',
    'kubernetes {\n labels =bad\n }',
    'kubernetes {\n labels a in (\n }',
    'kubernetes {\n labels\n }',
    'kubernetes {\n namespace_labels\n }',
    'kubernetes {\n namespaces a\n namespace_labels x=y\n }',
    'kubernetes {\n ttl -1\n }',
    'kubernetes {\n ttl 3601\n }',
    'kubernetes {\n ttl abc\n }',
    'kubernetes {\n ttl\n }',
    'kubernetes {\n ignore bogus\n }',
    'kubernetes {\n kubeconfig /nonexistent\n }',
    'kubernetes {\n kubeconfig\n }',
    'kubernetes {\n startup_timeout abc\n }',
    'kubernetes {\n startup_timeout -1s\n }',
    'kubernetes {\n apiserver_qps abc\n }',
    'kubernetes {\n apiserver_burst -1\n }',
    'kubernetes {\n apiserver_burst abc\n }',
    'kubernetes {\n upstream\n }',
    'kubernetes {\n resyncperiod 1m\n }',
    'kubernetes {\n transfer to *\n }',
    'kubernetes {\n multicluster\n }',
    'kubernetes {\n fallthrough bad..zone\n }',
    'kubernetes {\n labels a=b,c\n }',
    'kubernetes {\n labels ' + 'a' * 300 + '=b\n }',
    'kubernetes bad..zone',
    'kubernetes\n kubernetes',
    'kubernetes {\n kubeconfig /tmp/x\x00y\n }',
    'kubernetes {\n tls /tmp/x\x00y /tmp/x\x00y /tmp/x\x00y\n }',
    'kubernetes {\n endpoint ""\n }',
    'kubernetes {\n labels ""\n }',
    'kubernetes {\n namespaces ""\n }',
    'kubernetes {\n ttl ""\n }',
    'kubernetes {\n startup_timeout ""\n }',
    'kubernetes ""',
    'kubernetes {\n ttl ²\n }',
    'kubernetes {\n apiserver_burst ²\n }',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' kubernetes {\n  pods bogus\n }',
    ' kubernetes {\n  ignore bogus\n }',
    ' kubernetes {\n  upstream\n }',
    ' kubernetes\n kubernetes',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("kubernetes", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("kubernetes", body)
