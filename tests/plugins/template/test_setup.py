"""template: broken Corefiles are refused with one clean `plugin/template: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail

BROKEN: list[str] = [
    'template',
    'template BOGUSCLASS',
    'template IN BOGUSTYPE',
    'template IN A {\n match (\n }',
    'template IN A {\n answer "{{ .Bad "\n }',
    'template IN A {\n answer "{{ .Name }"\n }',
    'template IN A {\n rcode BOGUS\n }',
    'template IN A {\n rcode\n }',
    'template IN A {\n ederror abc\n }',
    'template IN A {\n ederror 99999\n }',
    'template IN A {\n ederror\n }',
    'template IN A {\n upstream x\n }',
    'template IN A {\n fallthrough bad..zone\n }',
    'template IN A {\n bogus\n }',
    'template IN A {\n match\n }',
    'template IN A {\n answer\n }',
    'template IN A bad..zone',
    'template IN A {\n answer "{{ bogusfunc }}"\n }',
    'template IN A {\n answer "{{ index }}"\n }',
    'template IN A {\n answer "{{ end }}"\n }',
    'template IN A {\n answer "{{ if }}"\n }',
    'template IN A {\n answer "{{ range .X }}"\n }',
    'template IN A {\n answer "{{ .Name | }}"\n }',
    'template IN A {\n answer "{{ (.Name }}"\n }',
    'template IN A {\n answer "{{ \\"x }}"\n }',
    'template "" ""',
    'template IN A {\n match ""\n }',
    'template IN A {\n answer ""\n }',
    'template IN A {\n rcode ""\n }',
    'template IN A ""',
    'template IN TYPE²',
    'template CLASS² A',
    'template IN A {\n ederror ²\n }',
    'template IN A {\n rcode ²\n }',
    'template IN TYPE99999999',
]
"""Bodies inside `. { }` that must not load cleanly."""

MUST_FAIL: list[str] = [
    ' template IN A {\n  match (\n }',
    ' template IN BOGUSTYPE',
]
"""Refused for sure by CoreDNS too."""


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("template", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("template", body)
