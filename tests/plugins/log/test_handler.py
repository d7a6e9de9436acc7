"""log: query log lines through a running server (formats, scopes, classes)."""

from __future__ import annotations

import re

from conftest import query, running

COMMON_RE = re.compile(
    r'^\[INFO\] 127\.0\.0\.1:\d+ - (\d+) "A IN example\.org\. udp (\d+) false 512" NOERROR qr,aa,rd (\d+) '
    r"\d+(\.\d+)?s$")


async def test_log_common_format(log_lines):
    async with running(". {\n log\n whoami\n}\n") as srv:
        r = await query(srv.port(), "Example.ORG", "A", use_edns=False)
    m = next(COMMON_RE.match(line) for line in log_lines if "example.org." in line)
    assert m is not None
    assert int(m.group(1)) == r.id


async def test_log_combined_and_custom_format_and_scope(log_lines):
    cf = '. {\n log example.org {combined}\n log . "{type} {name} {rcode} {>rflags} {unknown}"\n whoami\n}\n'
    async with running(cf) as srv:
        await query(srv.port(), "a.example.org", "A")
        await query(srv.port(), "b.example.net", "MX")
    combined = [line for line in log_lines if "a.example.org." in line]
    assert len(combined) == 1 and combined[0].endswith('s "0"')
    custom = [line for line in log_lines if "b.example.net." in line]
    assert custom == ["[INFO] MX b.example.net. NOERROR qr,aa,rd {unknown}"]


async def test_log_classes_filter(log_lines):
    cf = ". {\n log . {\n  class denial error\n }\n whoami\n}\nexample.org {\n log {\n  class error\n }\n}\n"
    async with running(cf) as srv:
        await query(srv.port(), "a.example.net", "A")  # success: not logged
        await query(srv.port(), "x.example.org", "A")  # no next plugin -> SERVFAIL: error class, logged
    assert not any("a.example.net." in line for line in log_lines)
    assert any("x.example.org." in line and " SERVFAIL " in line for line in log_lines)
