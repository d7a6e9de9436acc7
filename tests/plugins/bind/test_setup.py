"""bind: Corefile parsing, its errors, and where the listeners end up."""

from __future__ import annotations

import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import query, running

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'bind',
    'bind 300.1.1.1',
    'bind 127.0.0.1 {\n except\n }',
    'bind 127.0.0.1 {\n except 300.1.1.1\n }',
    'bind 127.0.0.1 {\n bogus\n }',
    'bind ::1%',
    'bind 127.0.0.1/8',
    'bind nosuchiface0',
    'bind ""',
    'bind 127.0.0.1 {\n except ""\n }',
]


MUST_FAIL: list[str] = [
    ' bind',
    ' bind 300.1.1.1',
]


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("bind", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("bind", body)


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
