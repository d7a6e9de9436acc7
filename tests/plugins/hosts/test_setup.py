"""hosts: Corefile parsing and its errors."""

from __future__ import annotations

import dns.rcode
import dns.rdatatype
import pytest
from broken_corefiles import check_broken, check_must_fail
from conftest import query, running

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'hosts {\n ttl 0\n }',
    'hosts {\n ttl abc\n }',
    'hosts {\n ttl 99999\n }',
    'hosts {\n ttl\n }',
    'hosts {\n reload abc\n }',
    'hosts {\n reload -1s\n }',
    'hosts {\n reload\n }',
    'hosts {\n fallthrough\n bogus\n }',
    'hosts /etc/hosts bad..zone',
    'hosts\n hosts',
    'hosts /tmp/x\x00y',
    'hosts {\n ttl ""\n }',
    'hosts {\n reload ""\n }',
    'hosts {\n "" ""\n }',
    'hosts {\n ttl ²\n }',
]


MUST_FAIL: list[str] = [
    ' hosts {\n  ttl 0\n }',
]


def _rdata(r, rdtype: str) -> list[str]:
    return [rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rd in rrset]


def _corefile(path: str, extra: str = "", zones: str = "") -> str:
    return f"example.org {{\n hosts {path} {zones} {{\n{extra}\n }}\n whoami\n}}\n"


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("hosts", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("hosts", body)


async def test_missing_file_only_warns(tmp_path):
    cf = _corefile(str(tmp_path / "nope"), "  10.0.0.4 inline.example.org")
    async with running(cf) as srv:
        r = await query(srv.port(), "inline.example.org", "A")
        assert _rdata(r, "A") == ["10.0.0.4"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  ttl 0", "ttl provided is invalid"),
        ("  ttl 70000", "ttl provided is invalid"),
        ("  ttl abc", "ttl needs a number of second"),
        ("  ttl", "ttl needs a time in second"),
        ("  reload", "reload needs a duration (zero seconds to disable)"),
        ("  reload 5", "invalid duration for reload '5'"),
        ("  reload -1s", "invalid negative duration for reload '-1s'"),
        ("  fallthrough\n  10.0.0.1 late.example.org", "unknown property '10.0.0.1'"),
    ],
)
async def test_config_errors(tmp_path, body, message):
    cf = _corefile(str(tmp_path / "hosts"), body)
    with pytest.raises(StartupError) as ei:
        async with running(cf):
            pass
    assert str(ei.value).startswith("plugin/hosts: Corefile:")
    assert str(ei.value).endswith("Error during parsing: " + message)


async def test_once_per_block(tmp_path):
    cf = f"example.org {{\n hosts {tmp_path}/a\n hosts {tmp_path}/b\n}}\n"
    with pytest.raises(StartupError, match="plugin/hosts: this plugin can only be used once per Server Block"):
        async with running(cf):
            pass
