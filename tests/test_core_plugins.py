"""log, errors, bind, root, debug through a running server."""

from __future__ import annotations

import logging
import re

import pytest
import trio
from conftest import query, running

from pycoredns.instance import StartupError


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines():
    h = Lines()
    logger = logging.getLogger("pycoredns")
    logger.addHandler(h)
    yield h.lines
    logger.removeHandler(h)


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


async def test_log_bad_class_is_an_error():
    with pytest.raises(StartupError, match="plugin/log: invalid Class: everything"):
        async with running(". {\n log {\n  class everything\n }\n}\n"):
            pass


async def test_errors_logs_no_next_plugin(log_lines):
    async with running("example.org {\n errors\n any\n}\n") as srv:
        r = await query(srv.port(), "a.example.org", "A")
        assert r.rcode() == 2
    assert "[ERROR] plugin/errors: 2 a.example.org. A: plugin/any: no next plugin found" in log_lines


async def test_errors_consolidate(log_lines):
    cf = "example.org {\n errors {\n  consolidate 1s \"no next plugin\" warning\n }\n any\n}\n"
    async with running(cf) as srv:
        for i in range(3):
            await query(srv.port(), f"q{i}.example.org", "A")
        assert not any("no next plugin found" in line for line in log_lines)
        with trio.fail_after(3):
            while not any("errors like" in line for line in log_lines):
                await trio.sleep(0.1)
    assert "[WARNING] plugin/errors: 3 errors like 'no next plugin' occurred in last 1s" in log_lines


async def test_errors_consolidate_show_first(log_lines):
    cf = "example.org {\n errors {\n  consolidate 1s \"no next\" info show_first\n }\n any\n}\n"
    async with running(cf) as srv:
        await query(srv.port(), "q.example.org", "A")
        assert "[INFO] plugin/errors: 2 q.example.org. A: plugin/any: no next plugin found" in log_lines


async def test_errors_unknown_option():
    with pytest.raises(StartupError) as e:
        async with running(". {\n errors {\n  bogus\n }\n}\n"):
            pass
    assert str(e.value) == ("plugin/errors: Corefile:3 - Syntax error: Unexpected token 'bogus', "
                            "expecting 'Unknown field bogus'")


async def test_bind_listens_only_on_the_given_address():
    async with running(". {\n bind 127.0.0.2\n whoami\n}\n") as srv:
        r = await query(srv.port(), "example.org", "A", host="127.0.0.2")
        assert r.rcode() == 0
        import dns.exception

        with pytest.raises((dns.exception.Timeout, ConnectionRefusedError, OSError)):
            await query(srv.port(), "example.org", "A", host="127.0.0.1", timeout=0.5)


async def test_bind_except_and_bad_address():
    async with running(". {\n bind 127.0.0.2 127.0.0.3 {\n  except 127.0.0.3\n }\n whoami\n}\n") as srv:
        assert [lst.host for lst in srv.instance.listeners.values()] == ["127.0.0.2"]
    with pytest.raises(StartupError, match='plugin/bind: not a valid IP address or interface name: "nope!"'):
        async with running(". {\n bind nope!\n}\n"):
            pass


async def test_bind_overlap_error():
    cf = "example.org {\n whoami\n}\nexample.org {\n bind 127.0.0.1\n whoami\n}\n"
    with pytest.raises(StartupError, match=r"cannot serve dns://example.org.:0 on 127.0.0.1 - zone overlap listener "
                                           r"capacity with dns://example.org.:0"):
        async with running(cf):
            pass


async def test_once_per_block():
    with pytest.raises(StartupError, match="plugin/errors: this plugin can only be used once per Server Block"):
        async with running(". {\n errors\n errors\n}\n"):
            pass
