"""template's RR-text parser, directly (moved from tests/test_template.py)."""

from __future__ import annotations

import pytest
from pycoredns.plugins.template import parse_rr


def test_parse_rr_defaults_and_errors() -> None:
    assert str(parse_rr("foo 60 IN A 192.0.2.1").rname) == "foo."
    assert parse_rr("foo.example. A 192.0.2.1").ttl == 3600
    assert parse_rr('t.example. 1 IN TXT "a (b)"').rdata.data == [b"a (b)"]
    for bad in ("", "garbage", "a.example. 60 IN A 1.2.3", "a.example. 60 IN BOGUS x"):
        with pytest.raises(ValueError):
            parse_rr(bad)
