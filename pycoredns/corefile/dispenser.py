"""caddy's ``Dispenser``: how plugin setup code walks the tokens of its directive.

The semantics (what counts as "the same line", how ``next_block`` opens and closes a sub-block,
what ``arg_err`` says) decide which Corefiles a plugin accepts, so they follow
``caddyfile/dispenser.go`` line by line rather than anything more Pythonic.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import CorefileError, go_sprintf, parse_error, syntax_error
from .lexer import Token


def same_line(prev: Token, nxt: Token) -> bool:
    """True if ``nxt`` starts on the line ``prev`` ends on (never across files)."""
    return prev.file == nxt.file and prev.line + prev.newlines == nxt.line


def new_line(prev: Token, nxt: Token) -> bool:
    """True if ``nxt`` starts on a later line than ``prev`` ends on, or in another file."""
    return prev.file != nxt.file or prev.line + prev.newlines < nxt.line


class Dispenser:
    """A cursor over one directive's tokens (every occurrence of it in a server block)."""

    __slots__ = ("_filename", "_tokens", "cursor", "nesting")

    def __init__(self, filename: str, tokens: list[Token]) -> None:
        self._filename = filename
        self._tokens = tokens
        self.cursor = -1
        self.nesting = 0

    @property
    def tokens(self) -> list[Token]:
        return self._tokens

    def next(self) -> bool:
        """Advance to the next token wherever it is; False at the end."""
        if self.cursor < len(self._tokens) - 1:
            self.cursor += 1
            return True
        return False

    def next_arg(self) -> bool:
        """Advance only if the next token is on the same line as the current one."""
        return self._advance_if(same_line)

    def next_line(self) -> bool:
        """Advance only if the next token starts a new line."""
        return self._advance_if(new_line)

    def _advance_if(self, related: Callable[[Token, Token], bool]) -> bool:
        """Step to the next token when `related(current, next)` holds (always from the start)."""
        if self.cursor < 0:
            self.cursor += 1
            return True
        t = self._tokens
        if self.cursor < len(t) - 1 and related(t[self.cursor], t[self.cursor + 1]):
            self.cursor += 1
            return True
        return False

    def next_block(self) -> bool:
        """caddy's NextBlock: step to the next token inside ``{ ... }``; False at its ``}``.

        Callers read one option per call and consume the rest of its line themselves (e.g. with
        :meth:`remaining_args`). The ``{`` must be the next token on the directive's line; a ``{``
        on the following line is not a block (the plugin then sees it as another instance of the
        directive). Nested blocks are not tracked, as in caddy.
        """
        if self.nesting > 0:
            if not self.next():  # unclosed block: stop instead of spinning (caddy, 2025)
                return False
            if self.val() == "}":
                self.nesting -= 1
                return False
            return True
        if not self.next_arg():  # block must open on same line
            return False
        if self.val() != "{":
            self.cursor -= 1  # roll back if not opening brace
            return False
        self.next()
        if self.val() == "}":  # open and then closed right away
            return False
        self.nesting += 1
        return True

    def incr_nest(self) -> None:
        """Enter a nested block by hand (caddy plugins do this for sub-sub-blocks)."""
        self.nesting += 1

    def val(self) -> str:
        """Text of the current token, "" before the first or past the last."""
        if 0 <= self.cursor < len(self._tokens):
            return self._tokens[self.cursor].text
        return ""

    def token(self) -> Token:
        """The current token (an empty one carrying the file name when there is none)."""
        if 0 <= self.cursor < len(self._tokens):
            return self._tokens[self.cursor]
        return Token("", self._filename, 0)

    def line(self) -> int:
        if 0 <= self.cursor < len(self._tokens):
            return self._tokens[self.cursor].line
        return 0

    def file(self) -> str:
        if 0 <= self.cursor < len(self._tokens):
            return self._tokens[self.cursor].file or self._filename
        return self._filename

    def args(self, n: int) -> list[str] | None:
        """The next ``n`` arguments on this line, or None if there are fewer (caddy ``Args``)."""
        out: list[str] = []
        for _ in range(n):
            if not self.next_arg():
                return None
            out.append(self.val())
        return out

    def remaining_arg_tokens(self) -> list[Token]:
        """All remaining tokens on the current line, stopping before a ``{``."""
        out: list[Token] = []
        while self.next_arg():
            if self.val() == "{":
                self.cursor -= 1
                break
            out.append(self._tokens[self.cursor])
        return out

    def remaining_args(self) -> list[str]:
        """caddy ``RemainingArgs``: the texts of :meth:`remaining_arg_tokens`."""
        return [t.text for t in self.remaining_arg_tokens()]

    def err(self, msg: str) -> CorefileError:
        """``FILE:LINE - Error during parsing: msg`` at the current token."""
        return parse_error(self.file(), self.line(), msg)

    def errf(self, fmt: str, *args: object) -> CorefileError:
        """:meth:`err` with Go-style formatting (``%v``, ``%s``, ``%q``, ``%d``), as caddy's ``Errf``."""
        return self.err(go_sprintf(fmt, *args))

    def arg_err(self) -> CorefileError:
        """caddy ``ArgErr``: wrong number of arguments, or a stray ``{``."""
        if self.val() == "{":
            return self.err("Unexpected token '{', expecting argument")
        return self.err(f"Wrong argument count or unexpected line ending after '{self.val()}'")

    def syntax_err(self, expected: str) -> CorefileError:
        """caddy ``SyntaxErr``: ``Syntax error: Unexpected token 'X', expecting 'Y'``."""
        return syntax_error(self.file(), self.line(), self.val(), expected)

    def eof_err(self) -> CorefileError:
        return self.err("Unexpected EOF")
