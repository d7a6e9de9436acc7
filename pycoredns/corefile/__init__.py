"""The Corefile language: lexer (lark), parser (caddy's line rules), snippets, imports, env vars.

``parse()`` turns Corefile text into :class:`ServerBlock` objects; plugin setup code reads its
directive's tokens back with a :class:`Dispenser`. Behaviour and error texts follow coredns/caddy
exactly, because operators' Corefiles (and their error messages in runbooks) are written for it.
"""

from .dispenser import Dispenser
from .env import replace_env
from .errors import CorefileError
from .fingerprint import fingerprint
from .lexer import Token, lex
from .parser import MAX_FILE_EXPANSIONS, MAX_SNIPPET_EXPANSIONS, ServerBlock, parse

__all__ = [
    "MAX_FILE_EXPANSIONS",
    "MAX_SNIPPET_EXPANSIONS",
    "CorefileError",
    "Dispenser",
    "ServerBlock",
    "Token",
    "fingerprint",
    "lex",
    "parse",
    "replace_env",
]
