"""The one exception type of the Corefile language, carrying CoreDNS's complete message text."""

from __future__ import annotations

import re


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


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def go_quote(s: str) -> str:
    """Go's ``%q`` / strconv.Quote for a string."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in named:
            out.append(named[ch])
        elif not ch.isprintable():
            cp = ord(ch)
            out.append(f"\\x{cp:02x}" if cp < 0x80 else (f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_str(v: object) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def go_sprintf(fmt: str, *args: object) -> str:
    """A Go ``fmt.Sprintf`` subset for plugin error texts ported from Go: %v %s %q %d %%.

    Any other verb is handed to Python's %-formatting with its flags, so %x, %5.2f etc. still work.
    """
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        try:
            v = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb in "vs":
            text = _go_str(v)
        elif verb == "q":
            text = go_quote(_go_str(v))
        else:
            spec = "%" + flags + width + (("." + prec) if prec else "") + verb
            return spec % (v,)
        return f"%{flags}{width}s" % text if width else text

    return _VERB.sub(sub, fmt)
