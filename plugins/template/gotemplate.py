"""template's Go text/template subset: compile at setup (unsupported syntax is a TemplateSyntaxError),
execute per query over a Struct of the query's fields (README.md lists the subset)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pycoredns.corefile.errors import go_quote, go_sprintf


class TemplateSyntaxError(Exception):
    """The template does not compile (a setup error)."""


class TemplateExecError(Exception):
    """The template failed at query time (counted in coredns_template_template_failures_total)."""


class Lazy:
    """A struct field computed on first use (most templates never look at .Message)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class Struct:
    """A Go struct value: unknown fields are an execution error (maps print `<no value>` instead)."""

    def __init__(self, type_name: str, **fields: Any) -> None:
        self._type = type_name
        self.fields = fields

    def field(self, name: str) -> Any:
        if name not in self.fields:
            raise TemplateExecError(f"can't evaluate field {name} in type {self._type}")
        value = self.fields[name]
        if type(value) is Lazy:
            value = self.fields[name] = value.fn()
        return value

    def __str__(self) -> str:
        return "{" + " ".join(go_print(self.field(k)) for k, v in self.fields.items() if not callable(v)) + "}"


def go_print(v: Any) -> str:
    """fmt.Sprint of a value the way text/template prints it."""
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(go_print(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_print(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, dict):
            item = item.get(k)
        elif isinstance(item, list):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateExecError(f"cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(item):
                raise TemplateExecError(f"index out of range: {k}")
            item = item[k]
        else:
            raise TemplateExecError(f"can't index item of type {type(item).__name__}")
    return item


def _parse_int(s: Any, base: Any = 10, bits: Any = 64) -> int:
    """strconv.ParseUint(s, base, bitSize)."""
    text = str(s)
    err = None
    try:
        b = int(base)
        v = int(text, b if b else 0)
        if v < 0 or text.strip() != text or text.startswith(("+", "-")) or ("_" in text and b):
            err = "invalid syntax"
        elif v >= 1 << int(bits or 64):
            err = "value out of range"
    except (ValueError, TypeError):
        err = "invalid syntax"
    if err:
        raise TemplateExecError(f"strconv.ParseUint: parsing {go_quote(text)}: {err}")
    return v


def _printf(fmt: Any, *args: Any) -> str:
    return go_sprintf(str(fmt), *[go_print(a) if isinstance(a, (list, dict)) or a is None else a for a in args])


FUNCS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "parseInt": _parse_int,
    "printf": _printf,
    "print": lambda *a: "".join(go_print(x) for x in a),
    "len": lambda x: len(x),
}
UNSUPPORTED = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>[()|])
  | (?P<bad>\S+)
)""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


def _unquote(s: str) -> str:
    out, i = [], 1
    while i < len(s) - 1:
        c = s[i]
        if c == "\\":
            out.append(_ESCAPES.get(s[i + 1], s[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


# A compiled pipeline is a list of commands; a command a list of operands; an operand is
# ("lit", value) | ("field", [names]) | ("func", name) | ("pipe", pipeline, [names]).
Operand = tuple


class Template:
    """One compiled RR template: text pieces and actions."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.parts: list[str | list[list[Operand]]] = []
        self._compile()

    def _err(self, msg: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"template: {self.name}:1: {msg}")

    def _compile(self) -> None:
        src = self.source
        pos = 0
        while True:
            start = src.find("{{", pos)
            if start < 0:
                self.parts.append(src[pos:])
                return
            text = src[pos:start]
            end = src.find("}}", start + 2)
            if end < 0:
                raise self._err("unclosed action")
            body = src[start + 2 : end]
            if body.startswith("- ") or body.startswith("-\t") or body == "-":
                text = text.rstrip()
                body = body[1:]
            pos = end + 2
            if body.endswith(" -") or body.endswith("\t-"):
                body = body[:-1]
                while pos < len(src) and src[pos].isspace():
                    pos += 1
            self.parts.append(text)
            if body.strip().startswith("/*"):
                if not body.strip().endswith("*/"):
                    raise self._err("unclosed comment")
                continue
            self.parts.append(self._pipeline(self._tokens(body), top=True))

    def _tokens(self, body: str) -> list[tuple[str, str]]:
        out = []
        for m in _TOKEN.finditer(body):
            kind = m.lastgroup
            if kind is None:
                continue
            val = m.group(kind)
            if kind == "bad":
                if val in (":=", "="):
                    raise self._err(f"unsupported template syntax: variable assignment {go_quote(val)}")
                raise self._err(f"unexpected {go_quote(val)} in command")
            if kind == "var":
                raise self._err(f"unsupported template syntax: variable {val}")
            if kind == "ident" and val in UNSUPPORTED:
                raise self._err(f"unsupported template syntax: {go_quote(val)}")
            out.append((kind, val))
        if not out:
            raise self._err("missing value for command")
        return out

    def _pipeline(self, toks: list[tuple[str, str]], top: bool = False) -> list[list[Operand]]:
        """Parse `cmd | cmd ...`, consuming `toks` in place (stops at an unmatched `)`)."""
        cmds: list[list[Operand]] = []
        cmd: list[Operand] = []
        while toks:
            kind, val = toks[0]
            if kind == "op" and val == ")":
                if top:
                    raise self._err("unexpected right paren")
                break
            toks.pop(0)
            if kind == "op" and val == "|":
                if not cmd:
                    raise self._err("missing command")
                cmds.append(cmd)
                cmd = []
            elif kind == "op" and val == "(":
                inner = self._pipeline(toks)
                if not toks or toks[0] != ("op", ")"):
                    raise self._err("unclosed left paren")
                toks.pop(0)
                fields: list[str] = []
                if toks and toks[0][0] == "field" and toks[0][1] != ".":
                    fields = toks.pop(0)[1].split(".")[1:]
                cmd.append(("pipe", inner, fields))
            elif kind in ("str", "raw"):
                cmd.append(("lit", _unquote(val) if kind == "str" else val[1:-1]))
            elif kind == "num":
                cmd.append(("lit", int(val)))
            elif kind == "field":
                cmd.append(("field", [] if val == "." else val.split(".")[1:]))
            elif val in ("true", "false"):
                cmd.append(("lit", val == "true"))
            elif val == "nil":
                cmd.append(("lit", None))
            elif val in FUNCS:
                cmd.append(("func", val))
            else:
                raise self._err(f"function {go_quote(val)} not defined")
        if not cmd:
            raise self._err("missing value for command")
        cmds.append(cmd)
        return cmds

    def direct(self) -> list[str | tuple[str, int]] | None:
        """The template as text and plain lookups only (`{{ .Name }}`, `{{ .Zone }}`, `{{ .Class }}`,
        `{{ .Type }}`: (field, -1); `{{ index .Match N }}`: ("Match", N)), which a caller can render
        without building the template data; None when it uses anything else."""
        out: list[str | tuple[str, int]] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            cmd = p[0] if len(p) == 1 else []
            if len(cmd) == 1 and cmd[0][0] == "field" and len(cmd[0][1]) == 1 and cmd[0][1][0] in DIRECT_FIELDS:
                out.append((cmd[0][1][0], -1))
            elif (len(cmd) == 3 and cmd[0] == ("func", "index") and cmd[1] == ("field", ["Match"])
                  and cmd[2][0] == "lit" and type(cmd[2][1]) is int and cmd[2][1] >= 0):
                out.append(("Match", cmd[2][1]))
            else:
                return None
        return out

    # -- execution -----------------------------------------------------------------------------
    def execute(self, data: Struct) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                try:
                    out.append(go_print(self._run(p, data)))
                except TemplateExecError as e:
                    raise TemplateExecError(f"template: {self.name}: executing {go_quote(self.name)}: {e}") from None
        return "".join(out)

    def _run(self, pipeline: list[list[Operand]], data: Struct) -> Any:
        value: Any = _NOPIPE
        for cmd in pipeline:
            value = self._command(cmd, data, value)
        return value

    def _command(self, cmd: list[Operand], data: Struct, piped: Any) -> Any:
        head = cmd[0]
        if head[0] == "func":
            args = [self._operand(op, data, ()) for op in cmd[1:]]
            if piped is not _NOPIPE:
                args.append(piped)
            try:
                return FUNCS[head[1]](*args)
            except TemplateExecError as e:
                raise TemplateExecError(f"error calling {head[1]}: {e}") from None
            except TypeError:
                raise TemplateExecError(f"wrong number of args for {head[1]}") from None
        args = [self._operand(op, data, ()) for op in cmd[1:]]
        if piped is not _NOPIPE:
            args.append(piped)
        return self._operand(head, data, args)

    def _operand(self, op: Operand, data: Struct, args: Any) -> Any:
        kind = op[0]
        if kind == "lit":
            value, fields = op[1], []
        elif kind == "field":
            value, fields = data, op[1]
        elif kind == "func":
            return self._command([op], data, _NOPIPE)
        else:
            value, fields = self._run(op[1], data), op[2]
        for i, name in enumerate(fields):
            if isinstance(value, Struct):
                value = value.field(name)
            elif isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise TemplateExecError(f"nil pointer evaluating {name}")
            else:
                raise TemplateExecError(f"can't evaluate field {name} in type {type(value).__name__}")
            if callable(value):
                value = value(*(args if i == len(fields) - 1 else ()))
                args = ()
        if args:
            raise TemplateExecError(f"can't give argument to non-function {go_print(value)}")
        return value


_NOPIPE = object()
DIRECT_FIELDS = frozenset(("Name", "Zone", "Class", "Type"))  # string fields `Template.direct` takes
