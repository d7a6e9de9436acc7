"""The master-file reader (plugins/file/zonefile.py): directives, TTL rules, rdata forms, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycoredns.plugins.file.zonefile import Parser, ZoneFileError, read_zone


def zone(text: str, origin: str = "example.org.") -> list[str]:
    return [" ".join(rr.toZone().split()) for rr in Parser(origin).parse(text, "db")]


def test_ttl_rules() -> None:
    # no $TTL: the last explicit TTL, 3600 before any
    assert zone("a A 192.0.2.1\nb 60 A 192.0.2.2\nc A 192.0.2.3\n") == [
        "a.example.org. 3600 IN A 192.0.2.1", "b.example.org. 60 IN A 192.0.2.2", "c.example.org. 60 IN A 192.0.2.3"]
    # $TTL wins over earlier explicit TTLs; units are read
    assert zone("$TTL 1h30m\na 60 A 192.0.2.1\nb A 192.0.2.2\n") == [
        "a.example.org. 60 IN A 192.0.2.1", "b.example.org. 5400 IN A 192.0.2.2"]


def test_names_owners_and_classes() -> None:
    text = "@ IN 300 MX 10 mail\n  CH TXT x\nsub.example.org. 5 IN NS ns.other.\n$ORIGIN net.\nx A 10.0.0.1\n"
    assert zone(text) == [
        "example.org. 300 IN MX 10 mail.example.org.", 'example.org. 300 CH TXT "x"',
        "sub.example.org. 5 IN NS ns.other.", "x.net. 5 IN A 10.0.0.1"]


def test_parentheses_comments_quotes_and_generic_rdata() -> None:
    text = '@ SOA ns admin ( 1 ; serial\n 2 3 4 5 )\nt TXT "a b" "c\\"d" ; comment\ng TYPE65280 \\# 2 abcd\n'
    got = zone(text)
    assert got[0] == "example.org. 3600 IN SOA ns.example.org. admin.example.org. 1 2 3 4 5"
    txt = list(Parser("example.org.").parse(text, "db"))[1]
    assert txt.rdata.data == [b"a b", b'c"d']  # the escaped quote is one byte
    assert got[2].startswith("g.example.org. 3600 IN TYPE65280")


def test_include_with_origin(tmp_path: Path) -> None:
    (tmp_path / "inc").write_text("www A 192.0.2.9\n")
    (tmp_path / "db").write_text("$INCLUDE inc sub.example.org.\nafter A 192.0.2.8\n")
    got = [" ".join(rr.toZone().split()) for rr in read_zone(str(tmp_path / "db"), "example.org.")]
    assert got == ["www.sub.example.org. 3600 IN A 192.0.2.9", "after.example.org. 3600 IN A 192.0.2.8"]


@pytest.mark.parametrize(("text", "problem"), [
    ("@ IN SOA ns admin ( 1 2 3 4 5\n", "unbalanced parenthesis"),
    ("@ IN SOA ns admin 1 2 3 4 5 )\n", "extra closing brace"),
    ("  A 192.0.2.1\n", "no owner name"),
    ("x BOGUS 1\n", "unknown RR type BOGUS"),
    ("$TTL abc\n", "bad TTL in $TTL"),
    ('x TXT "open\n', "unterminated quoted string"),
    ("$FOO bar\n", "unknown directive $FOO"),
])
def test_errors_name_file_and_line(text: str, problem: str) -> None:
    with pytest.raises(ZoneFileError) as e:
        zone(text)
    assert str(e.value).startswith("db:") and problem in str(e.value)


def test_include_loops_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "self").write_text("$INCLUDE self\n")
    with pytest.raises(ZoneFileError, match="too deeply nested"):
        list(read_zone(str(tmp_path / "self"), "example.org."))
