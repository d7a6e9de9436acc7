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


def test_direct_plans_render_what_execute_renders() -> None:
    """Plain templates (text, .Name/.Zone/.Class/.Type, index .Match N) render in the handler without the
    template data (Tmpl.render_direct); what they print must be what the executor prints. Anything else,
    and an index out of range, goes to the executor (None here)."""
    import re

    from pycoredns.plugins.template.handler import Matched, Tmpl

    from pycoredns import wire

    rx = re.compile(r"^(?P<host>n[0-9]+)[.](x)?(alias)[.]test[.]$")
    m = rx.search("n7.alias.test.")
    assert m is not None
    hit = Matched(None, "alias.test.", "n7.alias.test.", m, "IN", "A")  # type: ignore[arg-type]
    data = Struct("*template.templateData", Zone="alias.test.", Name="n7.alias.test.", Class="IN", Type="A",
                  Match=[m.group(0), m.group(1), "", m.group(3)])
    for src in ("{{ .Name }} 60 IN CNAME {{ index .Match 1 }}.bench.test.", "{{.Zone}} {{ .Class }} {{ .Type }}",
                "x{{ index .Match 2 }}y{{ index .Match 3 }}{{ index .Match 0 }}", "plain text"):
        t = Tmpl(1, wire.TYPE_A, ["alias.test."])
        t.answer.templates.append(Template("answer", src))
        assert t.render_direct(hit) == ((Template("answer", src).execute(data),), (), ()), src
    for src in ("{{ index .Match 4 }}", "{{ .Remote }}", "{{ .Name | printf \"%s\" }}", "{{ index .Group \"host\" }}",
                "{{ .Message.Id }}"):
        t = Tmpl(1, wire.TYPE_A, ["alias.test."])
        t.answer.templates.append(Template("answer", src))
        assert t.render_direct(hit) is None, src
