"""The subset of expr-lang (github.com/expr-lang/expr) that `view` expressions use.

Literals (numbers, 'strings', "strings", true, false, nil, [lists]), calls of the environment's
functions, `!`/`not`, `==` `!=` `<` `<=` `>` `>=`, `in` / `not in`, `matches` (a regular
expression), `contains`, `startsWith`, `endsWith`, `+`, `&&`/`and`, `||`/`or` and parentheses.
`compile` checks the syntax and the function names; `run` raises `ExprError` on a runtime error
(a bad CIDR, a type mismatch), which `view` treats as "no match", as CoreDNS does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\],+])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">=", "in", "matches", "contains", "startsWith", "endsWith"}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


class ExprError(Exception):
    """`pos` (0-based) when the error has a place in the source: compile errors read like expr-lang's."""

    def __init__(self, msg: str, pos: int | None = None) -> None:
        super().__init__(msg)
        self.pos = pos


Node = tuple  # ("lit", v) | ("call", name, [args]) | ("list", [items]) | (op, a, b) | ("!", a)


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), s[1:-1])


def tokenize(text: str) -> tuple[list[tuple[str, Any]], list[tuple[int, str]]]:
    """Tokens, and per token (start offset, expr-lang's display of it for error messages)."""
    out: list[tuple[str, Any]] = []
    where: list[tuple[int, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            start = len(text) - len(text[pos:].lstrip())
            raise ExprError(f"unrecognized character: U+{ord(text[start]):04X} '{text[start]}'", start)
        pos = m.end()
        start = m.start(m.lastgroup or 0)
        if m.group("num"):
            v = m.group("num")
            out.append(("lit", float(v) if "." in v else int(v)))
            where.append((start, f'Number("{v}")'))
        elif m.group("str"):
            out.append(("lit", _unquote(m.group("str"))))
            where.append((start, f'String("{_unquote(m.group("str"))}")'))
        elif m.group("op"):
            op = m.group("op")
            out.append(("op", op))
            where.append((start, f'Bracket("{op}")' if op in "()[]" else f'Operator("{op}")'))
        else:
            word = m.group("name")
            where.append((start, f'Identifier("{word}")'))
            if word in ("true", "false"):
                out.append(("lit", word == "true"))
            elif word == "nil":
                out.append(("lit", None))
            elif word in _WORD_OPS:
                out.append(("op", _WORD_OPS[word]))
                where[-1] = (start, f'Operator("{word}")')
            elif word in _COMPARE:
                out.append(("op", word))
                where[-1] = (start, f'Operator("{word}")')
            else:
                out.append(("name", word))
    return out, where


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Callable]) -> None:
        self.t, self.where = tokenize(text)
        self.end = max(len(text.rstrip()) - 1, 0)
        self.i = 0
        self.functions = functions

    def error(self, msg: str | None = None, i: int | None = None) -> ExprError:
        """expr-lang's "unexpected token X" at token `i` (EOF past the end)."""
        i = self.i if i is None else i
        if i >= len(self.t):
            return ExprError(msg or "unexpected token EOF", self.end)
        pos, shown = self.where[i]
        return ExprError(msg or f"unexpected token {shown}", pos)

    def peek(self) -> tuple[str, Any] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("op", op)):
            raise self.error()
        self.i += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] in ops

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise self.error()
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.is_op("||"):
            self.take()
            node = ("||", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.is_op("&&"):
            self.take()
            node = ("&&", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.is_op("!"):
            self.take()
            return ("!", self.unary())
        return self.compare()

    def compare(self) -> Node:
        node = self.additive()
        if self.is_op("!") and self.i + 1 < len(self.t) and self.t[self.i + 1] == ("op", "in"):
            self.i += 2
            return ("!", ("in", node, self.additive()))
        if self.is_op(*_COMPARE):
            op = self.take()[1]
            node = (op, node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.primary()
        while self.is_op("+"):
            self.take()
            node = ("+", node, self.primary())
        return node

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "lit":
            return ("lit", value)
        if kind == "name":
            if value not in self.functions:
                raise self.error(f"unknown name {value}", self.i - 1)
            self.take("(")
            args: list[Node] = []
            if not self.is_op(")"):
                args.append(self.or_())
                while self.is_op(","):
                    self.take()
                    args.append(self.or_())
            self.take(")")
            return ("call", value, args)
        if value == "(":
            node = self.or_()
            self.take(")")
            return node
        if value == "[":
            items: list[Node] = []
            if not self.is_op("]"):
                items.append(self.or_())
                while self.is_op(","):
                    self.take()
                    items.append(self.or_())
            self.take("]")
            return ("list", items)
        raise self.error(i=self.i - 1)


def compile_expr(text: str, functions: Mapping[str, Callable]) -> Node:
    """The program for `text`; ExprError with expr-lang's message and caret lines on bad input."""
    try:
        return _Parser(text, functions).parse()
    except ExprError as e:
        if e.pos is None:
            raise
        raise ExprError(f"{e} (1:{e.pos + 1})\n | {text}\n | {'.' * e.pos}^") from None


def run(node: Node, env: Mapping[str, Callable]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "call":
        return env[node[1]](*[run(a, env) for a in node[2]])
    if op == "list":
        return [run(a, env) for a in node[1]]
    if op == "!":
        v = run(node[1], env)
        if not isinstance(v, bool):
            raise ExprError("invalid operation: ! on non-bool")
        return not v
    if op == "&&":
        return _bool(run(node[1], env)) and _bool(run(node[2], env))
    if op == "||":
        return _bool(run(node[1], env)) or _bool(run(node[2], env))
    a, b = run(node[1], env), run(node[2], env)
    try:
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "in":
            return a in b
        if op == "matches":
            return re.search(b, a) is not None
        if op == "contains":
            return b in a
        if op == "startsWith":
            return a.startswith(b)
        if op == "endsWith":
            return a.endswith(b)
        if op == "+":
            return a + b
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            raise ExprError(f"invalid operation: {op} (mismatched types)")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except (TypeError, re.error) as e:
        raise ExprError(str(e)) from None


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ExprError("invalid operation: expected bool")
    return v
