"""The one exception type of the Corefile language, carrying CoreDNS's complete message text."""

from __future__ import annotations


class CorefileError(Exception):
    """A Corefile parse error; ``str(e)`` is exactly what CoreDNS prints.

    For example ``Corefile:3 - Error during parsing: Unknown directive 'foo'``. ``file``/``line`` are
    the location the message names and ``msg`` the part after ``Error during parsing: `` (or the
    ``Syntax error: ...`` text), so callers can re-wrap it without parsing the string.
    """

    def __init__(self, message: str, *, file: str = "", line: int = 0, msg: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.msg = msg or message


def parse_error(file: str, line: int, msg: str) -> CorefileError:
    """caddy's ``Err``: ``FILE:LINE - Error during parsing: msg``."""
    return CorefileError(f"{file}:{line} - Error during parsing: {msg}", file=file, line=line, msg=msg)


def syntax_error(file: str, line: int, val: str, expected: str) -> CorefileError:
    """caddy's ``SyntaxErr``: ``FILE:LINE - Syntax error: Unexpected token 'X', expecting 'Y'``."""
    msg = f"Syntax error: Unexpected token '{val}', expecting '{expected}'"
    return CorefileError(f"{file}:{line} - {msg}", file=file, line=line, msg=msg)
