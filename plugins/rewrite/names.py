"""Name matching shared by the rules and the response rewriters: Matcher, `{N}` substitution, IsDomainName.

A module of its own so that rules.py (which builds response rewriters) and response.py (whose
rewriters match names) both import it instead of each other.
"""

from __future__ import annotations

import re

from pycoredns import wire

EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX = "exact", "prefix", "suffix", "substring", "regex"


def substitute(template: str, m: re.Match[str]) -> str:
    """Replace `{0}`..`{N}` with the match's groups (Go's loop over FindStringSubmatch)."""
    s = template
    for i in range(m.re.groups + 1):
        s = s.replace("{" + str(i) + "}", m.group(i) or "")
    return s


_LABELS = re.compile(r"(?:[^.]{1,63}[.])*[^.]{1,63}[.]?")  # labels of 1..63 characters


def valid_name(name: str) -> bool:
    """dns.IsDomainName: labels of 1..63 octets, at most 255 octets on the wire, no empty labels."""
    if name in (".", ""):
        return name == "."
    if "\\" not in name and name.isascii():  # the usual case, without an escape to decode: one regex
        return len(name) - name.endswith(".") <= 253 and _LABELS.fullmatch(name) is not None  # 253 + 2 octets
    body = name[:-1] if name.endswith(".") and not name.endswith("\\.") else name
    if not body or body.startswith(".") or ".." in body.replace("\\.", "xx"):
        return False
    try:
        w = wire.text_to_wire(name)
        wire_labels, _ = wire.read_name(w, 0)
    except (wire.WireError, ValueError, IndexError):
        return False
    return all(0 < len(label) <= 63 for label in wire_labels) and len(w) <= 255


class Matcher:
    """exact/prefix/suffix/substring/regex matching of a lowercased name."""

    __slots__ = ("kind", "pattern", "text")

    def __init__(self, kind: str, text: str, pattern: re.Pattern[str] | None = None) -> None:
        self.kind = kind
        self.text = text
        self.pattern = pattern

    def match(self, name: str) -> bool:
        k = self.kind
        if k == EXACT:
            return name == self.text
        if k == PREFIX:
            return name.startswith(self.text)
        if k == SUFFIX:
            return name.endswith(self.text)
        if k == SUBSTRING:
            return self.text in name
        assert self.pattern is not None
        return self.pattern.search(name) is not None

    def replace(self, name: str, to: str) -> str | None:
        """The rewritten name, or None when it does not match."""
        k = self.kind
        if k == EXACT:
            return to if name == self.text else None
        if k == PREFIX:
            return to + name[len(self.text):] if name.startswith(self.text) else None
        if k == SUFFIX:
            return name[: len(name) - len(self.text)] + to if name.endswith(self.text) else None
        if k == SUBSTRING:
            return name.replace(self.text, to) if self.text in name else None
        assert self.pattern is not None
        m = self.pattern.search(name)
        return substitute(to, m) if m else None
