"""wire.text_to_wire against dnspython's reading of the same presentation-form names."""

from __future__ import annotations

import dns.name
import pytest

from pycoredns import wire

NAMES = ["example.org.", "example.org", ".", "Mixed.Case.", "a\\.b.c.", "\\255.x.", "a\\..", "x.a\\..",
         "a\\\\.", "a\\\\.b.", "a\\\\\\..", "a\\046.", "a\\.\\..", "a\\."]


@pytest.mark.parametrize("text", NAMES)
def test_text_to_wire_reads_names_as_dnspython_does(text: str) -> None:
    """An escaped final dot (`a\\..`) is part of the last label, not the root's dot."""
    want = dns.name.from_text(text).to_wire()
    assert wire.text_to_wire(text) == want


def test_wire_to_text_round_trip_of_an_escaped_final_dot() -> None:
    data = wire.text_to_wire("x.a\\..")
    assert data == b"\x01x\x02a.\x00"
    assert wire.text_to_wire(wire.wire_name_to_text(data)) == data
