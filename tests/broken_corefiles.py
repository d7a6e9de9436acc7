"""Broken-Corefile checks shared by every plugin's tests/plugins/<name>/test_setup.py.

Each case is loaded in-process (`Process.load`, parse + setup, no sockets) and must raise StartupError
with one line that names the plugin (or the file and line) and leaks no Python exception name. Every
directive is tried with GENERIC_ARGS; each plugin's test_setup.py adds its own BROKEN bodies.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import trio

from pycoredns.instance import StartupError
from pycoredns.process import Process

LEAK = re.compile(
    r"Traceback|\b\w*(Error|Exception)\b(?!:? *(during parsing|occurred))|NoneType|object has no attribute"
)
PARSER_FORM = re.compile(r"^\S+:\d+ - (Error during parsing|Syntax error): ")

# Arguments that are wrong for nearly every directive: they are tried everywhere.
GENERIC_ARGS = [
    "a b c d e f g h i j",
    "-1",
    "99999999999999999999999",
    "abc",
    '""',
    "🦄x\x00",
    "-5s",
    "999999999h",
    "300.1.1.1",
    "10.0.0.0/33",
    "::1/129",
    "(",
    "[",
    "*",
    "\\",
    "'x",
    "a" * 3000,
    "." * 300,
    "NaN",
    "@",
    "/nonexistent/file",
]


def block(body: str, key: str = ".") -> str:
    return f"{key} {{\n{body}\n}}\n"


def generic_cases(d: str) -> list[str]:
    out = [block(f" {d} {a}") for a in GENERIC_ARGS]
    out += [block(f" {d} {{\n  bogus_option {a}\n }}") for a in GENERIC_ARGS[:8]]
    out += [block(f" {d} {{\n  {a}\n }}") for a in GENERIC_ARGS[8:]]
    out += [
        block(f" {d}\n {{\n }}"),  # sub-block brace on the next line
        block(f" {d} }}"),  # a `}` on the directive line
        block(f" {d} {{\n  {{\n }}"),  # nested brace inside a sub-block
        f". {{\n {d} {{\n}}\n",  # unterminated sub-block
        block(f" {d} {{ }}"),  # `{ }` on one line
    ]
    return out


def load(text: str) -> str | None:
    """The StartupError text, or None if the configuration loads."""
    try:
        Process(lambda: (text, "Corefile"), dns_port=0, quiet=True, out=lambda _: None).load((text, "Corefile"))
    except StartupError as e:
        return str(e)
    return None


def check_message(directive: str, msg: str) -> None:
    assert "\n" not in msg.strip(), msg
    assert not LEAK.search(msg), msg
    assert msg.startswith(f"plugin/{directive}: ") or PARSER_FORM.match(msg), msg


def check_broken(directive: str, bodies: list[str]) -> None:
    """The generic variants and `bodies` (lines inside `. { }`): each is refused with one clean line,
    or (generic noise a plugin ignores) loads."""
    bad = []
    for text in generic_cases(directive) + [block(" " + body) for body in bodies]:
        msg = load(text)
        if msg is None:
            continue
        try:
            check_message(directive, msg)
        except AssertionError:
            bad.append((text[:120], msg[:300]))
    assert not bad, "\n".join(f"{t!r} -> {m!r}" for t, m in bad)


def check_must_fail(directive: str, body: str) -> None:
    """`body` is refused (CoreDNS errors for sure), with one clean line."""
    msg = load(block(body))
    assert msg is not None, f"accepted: {body!r}"
    check_message(directive, msg)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `check` every 50 ms until true (bounded in count and time)."""
    with trio.move_on_after(timeout):
        for _ in range(int(timeout / 0.05) + 1):
            if await check():
                return
            await trio.sleep(0.05)
    assert await check(), "condition not reached in time"
