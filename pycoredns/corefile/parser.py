"""Corefile parser: coredns/caddy ``caddyfile/parse.go`` on top of the lark tokens.

Why by hand and not a lark grammar: caddy's structure is decided by *lines*, not by a context-free
grammar. A key list ends at a line break unless the key ends in ``,``; a directive owns the rest of
its line plus a brace block; ``}`` closes the server block only as the first token of a line;
``import`` splices a file or snippet's tokens into the stream while it is being parsed (so what
follows depends on what was imported); and errors must name the exact token caddy was looking at.
A straight port of caddy's cursor-based parser reproduces all of that, including its quirks (a
missing final ``}`` after a nested block goes unnoticed, a ``{`` on the next line joins the previous
directive), which a grammar would "fix".

One change in representation, not behaviour: caddy splices imports into a flat slice, which is
quadratic for a self-importing file. The token stream here is a gap buffer (consumed tokens on the
left, pending ones reversed on the right) so a splice costs only the imported tokens, and the file
and snippet expansion limits are reached in well under a second.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from .dispenser import new_line, same_line
from .env import replace_env
from .errors import CorefileError, parse_error, syntax_error
from .lexer import Token, lex

log = logging.getLogger("pycoredns")

MAX_SNIPPET_EXPANSIONS = 10000
MAX_FILE_EXPANSIONS = 100000


@dataclass
class ServerBlock:
    """One server block: its keys and, per directive, all of that directive's tokens."""

    keys: list[Token]
    tokens: dict[str, list[Token]] = field(default_factory=dict)

    @property
    def key_texts(self) -> list[str]:
        return [k.text for k in self.keys]


class _Stream:
    """caddy's token slice + cursor, as a gap buffer (see the module docstring).

    ``left`` holds tokens[0..cursor], ``right`` holds tokens[cursor+1..] reversed. ``past_end``
    models caddy's cursor sitting one past the last token, which happens after an empty import at
    the very end of the input.
    """

    __slots__ = ("left", "past_end", "right")

    def __init__(self, tokens: list[Token]) -> None:
        self.left: list[Token] = []
        self.right: list[Token] = tokens[::-1]
        self.past_end = False

    @property
    def cursor(self) -> int:
        return len(self.left) - 1 + (1 if self.past_end else 0)

    def empty(self) -> bool:
        return not self.left and not self.right

    def cur(self) -> Token | None:
        if self.past_end or not self.left:
            return None
        return self.left[-1]

    def next(self) -> bool:
        if self.past_end or not self.right:
            return False
        self.left.append(self.right.pop())
        return True

    def back(self) -> None:
        if self.past_end:
            self.past_end = False
        elif self.left:
            self.right.append(self.left.pop())

    def next_arg(self) -> bool:
        if self.cursor < 0:  # caddy: first NextArg always advances
            return self.next()
        cur = self.cur()
        if cur is None or not self.right:
            return False
        if same_line(cur, self.right[-1]):
            self.left.append(self.right.pop())
            return True
        return False

    def is_new_line(self) -> bool:
        if self.cursor < 1:
            return True
        if self.past_end:
            return False
        return new_line(self.left[-2], self.left[-1])

    def set_text(self, text: str) -> None:
        tok = self.left[-1]
        if tok.text != text:
            self.left[-1] = Token(text, tok.file, tok.line, text.count("\n"))

    def splice(self, imported: list[Token]) -> None:
        """Replace ``import PATTERN`` (the last two consumed tokens) with ``imported``.

        Afterwards the cursor is on the first imported token, as in caddy's doImport.
        """
        del self.left[-2:]
        self.right.extend(reversed(imported))
        if self.right:
            self.left.append(self.right.pop())
        else:
            self.past_end = True


def _go_clean(path: str) -> str:
    """Go's filepath.Clean for absolute POSIX paths (normpath keeps a leading '//')."""
    p = os.path.normpath(path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def _has_meta(path: str) -> bool:
    return any(c in path for c in "*?[\\")


class _BadPattern(Exception):
    pass


def _check_pattern(pattern: str) -> None:
    """Go's filepath.Match syntax check, for what can reach it (no complete ``[...]`` class)."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            raise _BadPattern
        if c == "\\":
            if i + 1 >= len(pattern):
                raise _BadPattern
            i += 1
        i += 1


def _go_match(pattern: str, name: str) -> bool:
    """filepath.Match without classes: ``*`` and ``?`` never match '/', ``\\`` escapes; dotfiles match."""
    return _match_regex(pattern).fullmatch(name) is not None


@functools.lru_cache(maxsize=64)
def _match_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression for a glob pattern, made once per pattern (not once per directory entry)."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            parts.append("[^/]*")
        elif c == "?":
            parts.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            parts.append(re.escape(pattern[i]))
        else:
            parts.append(re.escape(c))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def _glob_dir(directory: str, pattern: str, matches: list[str]) -> None:
    if not os.path.isdir(directory):
        return
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for n in names:
        if _go_match(pattern, n):
            matches.append(os.path.join(directory, n) if directory != "." else n)


def go_glob(pattern: str) -> list[str]:
    """Go's filepath.Glob: sorted per directory, ``*`` matches dotfiles (kubelet's ``..data``)."""
    _check_pattern(pattern)
    if not _has_meta(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    directory, file = os.path.split(pattern)
    if directory == "":
        directory = "."
    elif directory != "/":
        directory = directory.rstrip("/") or "/"
    matches: list[str] = []
    if not _has_meta(directory):
        _glob_dir(directory, file, matches)
        return matches
    if directory == pattern:
        raise _BadPattern
    for d in go_glob(directory):
        _glob_dir(d, file, matches)
    return matches


def _os_error_text(path: str, e: OSError) -> str:
    """Go's *PathError text for a failed open: ``open PATH: no such file or directory``."""
    reason = os.strerror(e.errno) if e.errno else str(e)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"


class _Parser:
    def __init__(
        self,
        filename: str,
        tokens: list[Token],
        directives: Collection[str] | None,
        env: Mapping[str, str],
        read_file: Callable[[str], str] | None,
    ) -> None:
        self.filename = filename
        self.s = _Stream(tokens)
        self.valid = None if directives is None else frozenset(directives)
        self.env = env
        self.read_file = read_file
        self.block = ServerBlock([])
        self.eof = False
        self.snippets: dict[str, list[Token]] = {}
        self.snippet_expansions = 0
        self.file_expansions = 0
        self._file_cache: dict[str, list[Token] | CorefileError] = {}
        self._glob_cache: dict[str, list[str]] = {}
        self._resolve_cache: dict[tuple[str, str], str] = {}

    # -- dispenser-style helpers over the stream -------------------------------------------------

    def val(self) -> str:
        cur = self.s.cur()
        return cur.text if cur is not None else ""

    def file(self) -> str:
        cur = self.s.cur()
        return (cur.file or self.filename) if cur is not None else self.filename

    def line(self) -> int:
        cur = self.s.cur()
        return cur.line if cur is not None else 0

    def err(self, msg: str) -> CorefileError:
        return parse_error(self.file(), self.line(), msg)

    def syntax_err(self, expected: str) -> CorefileError:
        return syntax_error(self.file(), self.line(), self.val(), expected)

    def arg_err(self) -> CorefileError:
        if self.val() == "{":
            return self.err("Unexpected token '{', expecting argument")
        return self.err(f"Wrong argument count or unexpected line ending after '{self.val()}'")

    def env_sub(self, s: str) -> str:
        return replace_env(s, self.env)

    # -- caddy parse.go ----------------------------------------------------------------------------

    def parse_all(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.s.next():
            self.block = ServerBlock([])
            self.begin()
            if self.block.keys:
                blocks.append(self.block)
        return blocks

    def begin(self) -> None:
        if self.s.empty():
            return
        self.addresses()
        if self.eof:
            # a Corefile consisting of only a line of addresses
            return
        keys = self.block.keys
        if len(keys) == 1 and keys[0].text.startswith("(") and keys[0].text.endswith(")"):
            name = keys[0].text[1:]
            name = name.removesuffix(")")
            if name in self.snippets:
                raise self.err(f"redeclaration of previously declared snippet {name}")
            tokens = self.snippet_tokens()
            # caddy's minimal guard: the body directly imports the snippet itself
            for i in range(len(tokens) - 1):
                if tokens[i].text == "import":
                    at_line_start = (
                        i == 0 or tokens[i - 1].file != tokens[i].file or tokens[i - 1].line != tokens[i].line
                    )
                    if at_line_start and self.env_sub(tokens[i + 1].text) == name:
                        raise self.err(f"maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
            self.snippets[name] = tokens
            self.block.keys = []  # a snippet is never a server
            return
        self.block_contents()

    def addresses(self) -> None:
        expecting_another = False
        while True:
            tkn = self.env_sub(self.val())
            if tkn == "import" and self.s.is_new_line():
                self.do_import()
                continue
            if tkn == "{":
                if expecting_another:
                    raise self.err(f"Expected another address but had '{tkn}' - check for extra comma")
                break
            if tkn != "":  # empty token possible if user typed ""
                if tkn.endswith(","):
                    tkn = tkn[:-1]
                    expecting_another = True
                else:
                    expecting_another = False
                cur = self.s.cur()
                assert cur is not None
                self.block.keys.append(Token(tkn, cur.file, cur.line, tkn.count("\n")))
            has_next = self.s.next()
            if expecting_another and not has_next:
                raise self.err("Unexpected EOF")
            if not has_next:
                self.eof = True
                break
            if not expecting_another and self.s.is_new_line():
                break

    def block_contents(self) -> None:
        opened = self.val() == "{"
        if not opened:
            self.s.back()  # single-server configs don't need curly braces
        self.directives()
        if opened and self.val() != "}":
            raise self.syntax_err("}")

    def directives(self) -> None:
        while self.s.next():
            if self.val() == "}":  # end of server block
                break
            if self.val() == "import":
                self.do_import()
                self.s.back()  # the loop advances onto the first imported token
                continue
            self.directive()

    def directive(self) -> None:
        cur = self.s.cur()
        assert cur is not None
        name = self.env_sub(cur.text)
        if self.valid is not None and name not in self.valid:
            raise self.err(f"Unknown directive '{name}'")
        toks = self.block.tokens.setdefault(name, [])
        toks.append(cur)  # caddy stores the directive-name token as written
        nesting = 0
        while self.s.next():
            v = self.val()
            if v == "{":
                nesting += 1
            elif self.s.is_new_line() and nesting == 0:
                self.s.back()  # read too far
                break
            elif v == "}" and nesting > 0:
                nesting -= 1
            elif v == "}" and nesting == 0:
                raise self.err("Unexpected '}' because no matching opening brace")
            elif v == "import" and self.s.is_new_line():
                self.do_import()
                self.s.back()
                continue
            self.s.set_text(self.env_sub(v))
            tok = self.s.cur()
            assert tok is not None
            toks.append(tok)
        if nesting > 0:
            raise self.err("Unexpected EOF")

    def snippet_tokens(self) -> list[Token]:
        if self.val() != "{":
            raise self.syntax_err("{")  # snippets must have braces
        count = 1
        tokens: list[Token] = []
        while self.s.next():
            v = self.val()
            if v == "}":
                count -= 1
                if count == 0:
                    break
            if v == "{":
                count += 1
            cur = self.s.cur()
            assert cur is not None
            tokens.append(cur)
        if count != 0:
            raise self.syntax_err("}")
        return tokens

    # -- import ------------------------------------------------------------------------------------

    def do_import(self) -> None:
        """Swap ``import PATTERN`` for the snippet's or the file(s)' tokens (caddy doImport)."""
        if not self.s.next_arg():
            raise self.arg_err()
        pattern = self.env_sub(self.val())
        if pattern == "":
            raise self.err("Import requires a non-empty filepath")
        if self.s.next_arg():
            raise self.err("Import takes only one argument (glob pattern or file)")

        imported: list[Token] = []
        if pattern in self.snippets:
            if self.snippet_expansions >= MAX_SNIPPET_EXPANSIONS:
                raise self.err(f"maximum snippet import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
            self.snippet_expansions += 1
            imported = self.snippets[pattern]
        else:
            if self.file_expansions >= MAX_FILE_EXPANSIONS:
                # caddy prints the snippet limit here (a known slip); CoreDNS users see this text
                raise self.err(f"maximum file import depth ({MAX_SNIPPET_EXPANSIONS}) exceeded")
            self.file_expansions += 1
            glob_pattern = self._resolve(pattern)
            if (
                glob_pattern.count("*") > 1
                or glob_pattern.count("?") > 1
                or ("[" in glob_pattern and "]" in glob_pattern)
            ):
                raise self.err(f"Glob pattern may only contain one wildcard (*), but has others: {glob_pattern}")
            matches = self._glob(pattern, glob_pattern)
            if not matches:
                if any(c in glob_pattern for c in "*?[]"):
                    log.warning("No files matching import glob pattern: %s", pattern)
                else:
                    raise self.err(f"File to import not found: {pattern}")
            for m in matches:
                imported.extend(self._import_file(m))
        self.s.splice(imported)

    def _resolve(self, pattern: str) -> str:
        """The absolute glob pattern: relative to the directory of the file holding the import."""
        if os.path.isabs(pattern):
            return pattern
        key = (self.file(), pattern)
        resolved = self._resolve_cache.get(key)
        if resolved is None:
            base = os.path.dirname(os.path.abspath(key[0]))
            resolved = self._resolve_cache[key] = _go_clean(os.path.join(base, pattern))
        return resolved

    def _glob(self, pattern: str, glob_pattern: str) -> list[str]:
        cached = self._glob_cache.get(glob_pattern)
        if cached is not None:
            return cached
        if self.read_file is not None and not _has_meta(glob_pattern):
            # injected contents: the file need not exist on disk
            matches = [glob_pattern] if self._readable(glob_pattern) else []
        else:
            try:
                matches = go_glob(glob_pattern)
            except _BadPattern:
                raise self.err(f"Failed to use import pattern {pattern}: syntax error in pattern")
        self._glob_cache[glob_pattern] = matches
        return matches

    def _readable(self, path: str) -> bool:
        if os.path.lexists(path):
            return True
        try:
            self._read(path)
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return True

    def _read(self, path: str) -> str:
        if self.read_file is not None:
            return self.read_file(path)
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def _import_file(self, path: str) -> list[Token]:
        """Lex one imported file; its tokens carry its absolute path (cached for this parse)."""
        cached = self._file_cache.get(path)
        if cached is None:
            try:
                text = self._read(path)
            except IsADirectoryError:
                cached = self.err(f"Could not import {path}: is a directory")
            except OSError as e:
                cached = self.err(f"Could not import {path}: {_os_error_text(path, e)}")
            else:
                cached = lex(text, _go_clean(os.path.abspath(path)))
            self._file_cache[path] = cached
        if isinstance(cached, CorefileError):
            raise self.err(cached.msg)
        return cached


def parse(
    text: str,
    filename: str = "Corefile",
    *,
    directives: Collection[str] | None = None,
    env: Mapping[str, str] | None = None,
    read_file: Callable[[str], str] | None = None,
) -> list[ServerBlock]:
    """Parse Corefile ``text`` into server blocks, expanding snippets, imports and env vars.

    ``filename`` is what error messages name (the ``-conf`` path as typed). ``directives=None`` skips
    directive-name validation (reload's change detection); ``env`` defaults to ``os.environ``;
    ``read_file`` replaces reading imported files (tests, reload). Raises :class:`CorefileError`.
    """
    p = _Parser(filename, lex(text, filename), directives, os.environ if env is None else env, read_file)
    return p.parse_all()
