"""Corefile lexer: coredns/caddy `caddyfile/lexer.go` rebuilt on a lark lexer.

The caddy lexer is a small state machine (comment, quoted, escaped). Every one of its states starts
at a distinguishable first character, so the same behaviour falls out of four mutually exclusive
lark terminals and a little post-processing:

* ``_WS``     - Go ``unicode.IsSpace`` runes (incl. ``\\r``), ignored; lark counts the ``\\n``.
* ``COMMENT`` - ``#`` at the start of a token, to end of line.
* ``QUOTED``  - starts with ``"``, runs to the next unescaped ``"`` (may span lines); at EOF an
  unterminated one yields what it has (a dangling backslash is dropped, an empty one is no token).
* ``WORD``    - anything else up to whitespace. ``\\r`` inside a word is *skipped*, not a separator
  (caddy ``continue``s on it), and a ``#`` in the middle drops the rest of the word only.

The terminals are disjoint on their first character, so lark's alternation order cannot change the
result. Braces are not special here: ``{whoami}`` is one word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Lark

# Go's unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property. Python's str.isspace
# differs (it also accepts \x1c-\x1f), so the set is spelled out.
_GO_SPACE = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Characters that end an unquoted word: Go spaces except \r (which caddy skips inside a word).
_WORD_END = "\\t\\n\\x0b\\x0c \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"

_GRAMMAR = rf"""
_WS: /[{_GO_SPACE}]+/
COMMENT: /#[^\n]*/
QUOTED: /"(?:[^"\\]|\\[\s\S])*(?:"|\\?\Z)/
WORD: /[^{_GO_SPACE}"#][^{_WORD_END}#]*(?:#[^{_WORD_END}]*)?/
start: (WORD | QUOTED)*
%ignore _WS
%ignore COMMENT
"""

# Only the lexer is used (``.lex()``); the block structure is built by hand (see parser.py). The
# trivial LALR rule just keeps this portable across lark 1.x instead of relying on lexer-only mode.
_lark = Lark(_GRAMMAR, parser="lalr", lexer="basic")
_ESCAPE = re.compile(r"\\([\s\S])")


@dataclass(frozen=True, slots=True)
class Token:
    """One Corefile token: its text, the file it came from and the line it starts on."""

    text: str
    file: str
    line: int
    newlines: int = 0


def _unescape(m: re.Match[str]) -> str:
    # Only \" is an escape; every other backslash pair is kept verbatim.
    return '"' if m.group(1) == '"' else m.group(0)


def lex(text: str, file: str) -> list[Token]:
    """Split ``text`` into tokens exactly as caddy's lexer does (see the module docstring)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[Token] = []
    for t in _lark.lex(text):
        raw = str(t)
        line = t.line or 1
        if t.type == "WORD":
            val = raw.split("#", 1)[0].replace("\r", "")
            out.append(Token(val, file, line))
            continue
        body = raw[1:]
        if len(body) >= 1 and body.endswith('"') and _closed(body):
            val = _ESCAPE.sub(_unescape, body[:-1])
        else:  # unterminated at EOF
            if body.endswith("\\") and _dangling_backslash(body):
                body = body[:-1]
            val = _ESCAPE.sub(_unescape, body)
            if not val:
                continue
        out.append(Token(val, file, line, val.count("\n")))
    return out


def _trailing_backslashes(s: str) -> int:
    return len(s) - len(s.rstrip("\\"))


def _closed(body: str) -> bool:
    """True if the final ``"`` of a quoted token's body is a real (unescaped) closing quote."""
    return _trailing_backslashes(body[:-1]) % 2 == 0


def _dangling_backslash(body: str) -> bool:
    """True if the body ends in an escape that EOF cut short (odd run of backslashes)."""
    return _trailing_backslashes(body) % 2 == 1
