"""The Corefile lexer: tokens, lines, quotes, comments, BOM and CRLF, as coredns/caddy lexes them (reference §1.1)."""

from __future__ import annotations

import pytest
from corefile_helpers import p, texts

from pycoredns.corefile import (
    Token,
    lex,
)

LEX_CASES = [
    # (input, [(text, line, newlines)])
    ("\ufeffwhoami", [("whoami", 1, 0)]),
    ("a\ufeff", [("a\ufeff", 1, 0)]),  # only a leading BOM is dropped
    ("{whoami}", [("{whoami}", 1, 0)]),
    (". {whoami}", [(".", 1, 0), ("{whoami}", 1, 0)]),
    ("a{ }b", [("a{", 1, 0), ("}b", 1, 0)]),
    ("# comment\nlog", [("log", 2, 0)]),
    ("log # trailing comment { }", [("log", 1, 0)]),
    ("bind 127.0.0.1#comment glued", [("bind", 1, 0), ("127.0.0.1", 1, 0), ("glued", 1, 0)]),
    ("foo#bar\nx", [("foo", 1, 0), ("x", 2, 0)]),
    ('a"b"', [('a"b"', 1, 0)]),
    ('"a"b', [("a", 1, 0), ("b", 1, 0)]),
    ('"a b" c', [("a b", 1, 0), ("c", 1, 0)]),
    ('"# not a comment"', [("# not a comment", 1, 0)]),
    ('"multi\nline" next\nlast', [("multi\nline", 1, 1), ("next", 2, 0), ("last", 3, 0)]),
    ('""', [("", 1, 0)]),
    ('a "" b', [("a", 1, 0), ("", 1, 0), ("b", 1, 0)]),
    (r'"\"q\""', [('"q"', 1, 0)]),
    (r'"\\"', [("\\\\", 1, 0)]),  # backslash pairs are kept verbatim
    (r'"\n"', [("\\n", 1, 0)]),
    (r"a\b", [("a\\b", 1, 0)]),  # outside quotes a backslash is ordinary
    ("a\\\nb", [("a\\", 1, 0), ("b", 2, 0)]),  # no line continuation
    ("a\r\nb\r\n", [("a", 1, 0), ("b", 2, 0)]),
    ("fo\ro", [("foo", 1, 0)]),  # \r is skipped, not a separator
    ('"a\r\nb"', [("a\r\nb", 1, 1)]),  # ... but kept inside quotes
    ("a\tb\x0bc\x0cd\u00a0e\u2003f", [(x, 1, 0) for x in "abcdef"]),
    ("a\x1cb", [("a\x1cb", 1, 0)]),  # not a Go space
    ('"unterminated', [("unterminated", 1, 0)]),
    ('"unterminated\\', [("unterminated", 1, 0)]),
    ('x "', [("x", 1, 0)]),
    ("\n\n  x", [("x", 3, 0)]),
]


@pytest.mark.parametrize(("src", "want"), LEX_CASES)
def test_lexer(src: str, want: list[tuple[str, int, int]]) -> None:
    got = [(t.text, t.line, t.newlines) for t in lex(src, "F")]
    assert got == want
    assert all(t.file == "F" for t in lex(src, "F"))


def test_lexer_uses_lark() -> None:
    from pycoredns.corefile import lexer

    assert type(lexer._lark).__module__.startswith("lark")


def test_bom_and_crlf_corefile() -> None:
    src = "\ufeff.:53 {\r\n    errors\r\n    forward . 1.1.1.1 {\r\n        force_tcp\r\n    }\r\n}\r\n"
    (b,) = p(src)
    assert texts(b.keys) == [".:53"]
    assert texts(b.tokens["forward"]) == ["forward", ".", "1.1.1.1", "{", "force_tcp", "}"]


def test_comment_glued_to_argument_keeps_line_going() -> None:
    (b,) = p(". {\n bind 127.0.0.1#comment glued\n}")
    assert texts(b.tokens["bind"]) == ["bind", "127.0.0.1", "glued"]
    (b,) = p(". {\n bind 127.0.0.1 # comment glued\n}")
    assert texts(b.tokens["bind"]) == ["bind", "127.0.0.1"]


def test_tokens_are_values() -> None:
    a = lex("x", "F")[0]
    assert a == Token("x", "F", 1, 0)
    assert len({a, Token("x", "F", 1)}) == 1
