"""Helpers of the template tests (moved from tests/test_template.py)."""

from __future__ import annotations


def texts(section) -> list[str]:
    return [rr.to_text() for rr in section]


def total(counter, **match: str) -> float:
    names = counter.label_names
    return sum(v for labels, v in counter.values.items()
               if all(dict(zip(names, labels, strict=True)).get(k) == val for k, val in match.items()))
