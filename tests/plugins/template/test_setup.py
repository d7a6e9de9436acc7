"""template: broken Corefiles are refused with one clean `plugin/template: ...` line (moved from the central
table of tests/test_robustness_config.py; generic arguments come from tests/broken_corefiles.py)."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import query, running

from pycoredns.instance import StartupError

from .helpers import texts

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


@pytest.mark.parametrize(("body", "error"), [
    ("template", "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'template'"),
    ("template in A", "Corefile:2 - Error during parsing: invalid query class in"),
    ("template IN FOO", "Corefile:2 - Error during parsing: invalid RR class FOO"),
    ("template IN A {\n rcode FOO\n }", "Corefile:3 - Error during parsing: unknown rcode FOO"),
    ("template IN A {\n rcode\n }", "Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
                                    "ending after 'rcode'"),
    ("template IN A {\n match\n }", "Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
                                    "ending after 'match'"),
    ("template IN A {\n bogus x\n }", "Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
                                      "ending after 'bogus'"),
    ('template IN A {\n answer "{{ if .Name }}{{ end }}"\n }',
     'Corefile:3 - Error during parsing: could not compile template: {{ if .Name }}{{ end }}, template: answer:1: '
     'unsupported template syntax: "if"'),
    ('template IN A {\n authority "{{ foo }}"\n }',
     'Corefile:3 - Error during parsing: could not compile template: {{ foo }}, template: authority:1: '
     'function "foo" not defined\n'),
    ("template IN A {\n ederror x\n }",
     'Corefile:3 - Error during parsing: error parsing extended DNS error code x, strconv.ParseUint: parsing "x": '
     "invalid syntax\n"),
    ("template IN A {\n ederror 1 2 3\n }", "Corefile:3 - Error during parsing: Wrong argument count or unexpected "
                                            "line ending after '3'"),
    ("template IN A {\n match " + "a" * 10001 + "\n }",
     "Corefile:3 - Error during parsing: regex pattern too long: 10001 > 10000"),
])
async def test_setup_errors(body: str, error: str) -> None:
    with pytest.raises(StartupError) as ei:
        async with running(". {\n" + body + "\n}\n"):
            pass
    assert str(ei.value) == f"plugin/template: {error}"


async def test_bad_regex_and_upstream_accepted() -> None:
    with pytest.raises(StartupError) as ei:
        async with running(". {\ntemplate IN A {\n match (\n }\n}\n"):
            pass
    assert str(ei.value).startswith("plugin/template: Corefile:3 - Error during parsing: could not parse regex: (, ")
    async with running(". {\ntemplate IN A {\n answer \"{{ .Name }} 1 A 192.0.2.1\"\n upstream 1.2.3.4\n }\n}\n") as s:
        r = await query(s.port(), "u.example", "A")
        assert texts(r.answer) == ["u.example. 1 IN A 192.0.2.1"]
