"""``{$VAR}`` / ``{%VAR%}`` substitution, token by token, as caddy's ``replaceEnvVars``."""

from __future__ import annotations

from collections.abc import Mapping

# caddy re-scans from the start after each replacement, so a value that contains its own reference
# would loop forever in Go; we stop after this many replacements in one token instead.
_MAX_REPLACEMENTS = 1000


def _replace_refs(s: str, start: str, end: str, env: Mapping[str, str]) -> str:
    index = s.find(start)
    done = 0
    while index != -1 and done < _MAX_REPLACEMENTS:
        end_index = s.find(end, index)
        if end_index == -1:
            break
        if end_index > index + len(start):
            ref = s[index : end_index + len(end)]
            s = s.replace(ref, env.get(ref[len(start) : len(ref) - len(end)], ""))
        else:  # "{$}": an empty name stops substitution for this token
            return s
        done += 1
        index = s.find(start)
    return s


def replace_env(s: str, env: Mapping[str, str]) -> str:
    """Replace ``{%VAR%}`` first, then ``{$VAR}``; unset variables become ""; never splits."""
    if "{" not in s:
        return s
    s = _replace_refs(s, "{%", "%}", env)
    return _replace_refs(s, "{$", "}", env)
