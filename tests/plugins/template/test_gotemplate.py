"""template's Go-template subset, directly: output, syntax errors, execution errors (moved from
tests/test_template.py)."""

from __future__ import annotations

import pytest
from pycoredns.plugins.template import Struct, Template, TemplateExecError, TemplateSyntaxError


def _data(**fields) -> Struct:
    return Struct("*template.templateData", **fields)


@pytest.mark.parametrize(("src", "out"), [
    ("plain", "plain"),
    ("{{ .Name }}", "a.example."),
    ("{{.Name}}!", "a.example.!"),
    ("{{ index .Match 1 }}", "x"),
    ("{{ index .Group \"n\" }}/{{ .Group.n }}", "7/7"),
    ("{{ parseInt \"ff\" 16 8 }}", "255"),
    ("{{ parseInt (index .Match 2) 10 32 }}", "42"),
    ("{{ .Match }}", "[a x 42]"),
    ("{{ .Name | printf \"<%s>\" }}", "<a.example.>"),
    ("{{ len .Match }}", "3"),
    ("a {{- \" b \" -}} c", "a b c"),
    ("{{ \"q\\\"s\" }}", 'q"s'),
    ("{{ `raw\\n` }}", "raw\\n"),
    ("{{ .Group.missing }}", "<no value>"),
    ("{{ true }} {{ 12 }}", "true 12"),
])
def test_go_template_subset(src: str, out: str) -> None:
    t = Template("answer", src)
    assert t.execute(_data(Name="a.example.", Match=["a", "x", "42"], Group={"n": "7"})) == out


@pytest.mark.parametrize(("src", "error"), [
    ("{{ if .Name }}x{{ end }}", 'unsupported template syntax: "if"'),
    ("{{ range .Match }}{{ end }}", 'unsupported template syntax: "range"'),
    ("{{ $x := 1 }}", "unsupported template syntax: variable $x"),
    ("{{ foo }}", 'function "foo" not defined'),
    ("{{ .Name", "unclosed action"),
    ("{{ }}", "missing value for command"),
    ("{{ (index .Match 1 }}", "unclosed left paren"),
    ("{{ .Name ) }}", "unexpected right paren"),
])
def test_go_template_syntax_errors(src: str, error: str) -> None:
    with pytest.raises(TemplateSyntaxError) as ei:
        Template("answer", src)
    assert str(ei.value) == f"template: answer:1: {error}"


@pytest.mark.parametrize(("src", "error"), [
    ("{{ index .Match 9 }}", "error calling index: index out of range: 9"),
    ("{{ .Nope }}", "can't evaluate field Nope in type *template.templateData"),
    ("{{ parseInt \"zz\" 10 8 }}", 'error calling parseInt: strconv.ParseUint: parsing "zz": invalid syntax'),
    ("{{ parseInt \"300\" 10 8 }}", 'error calling parseInt: strconv.ParseUint: parsing "300": value out of range'),
    ("{{ .Name \"arg\" }}", "can't give argument to non-function a.example."),
])
def test_go_template_execution_errors(src: str, error: str) -> None:
    with pytest.raises(TemplateExecError) as ei:
        Template("answer", src).execute(_data(Name="a.example.", Match=["a"]))
    assert str(ei.value) == f'template: answer: executing "answer": {error}'
