"""forward's next_on_nodata and source_address (issue 17), answers and errors as CoreDNS 1.14.7's."""

from __future__ import annotations

import dns.rcode
import pytest
from conftest import query, running
from upstream import Unbound

from pycoredns.instance import StartupError

Z1 = {"example.org.": ["example.org. 3600 IN SOA ns.example.org. h.example.org. 1 3600 600 86400 30",
                       "a.example.org. 300 IN A 192.0.2.1", 'b.example.org. 300 IN TXT "one"']}
Z2 = {"example.org.": ["example.org. 3600 IN SOA ns.example.org. h.example.org. 2 3600 600 86400 30",
                       "a.example.org. 300 IN A 192.0.2.2", "a.example.org. 300 IN AAAA 2001:db8::2",
                       'b.example.org. 300 IN TXT "two"']}


@pytest.fixture(scope="module")
def upstreams():
    with Unbound(Z1) as u1, Unbound(Z2) as u2:
        yield u1, u2


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


async def test_next_on_nodata_and_source_address(upstreams) -> None:
    u1, u2 = upstreams
    cf = (f". {{\n forward . {u1.addr} {{\n  next_on_nodata\n  source_address 127.0.0.1\n }}\n"
          f" forward . {u2.addr}\n}}\n")
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example.org.", "A")  # answered by the first
        assert texts(r.answer) == ["a.example.org. 300 IN A 192.0.2.1"]
        r = await query(srv.port(), "a.example.org.", "AAAA")  # NODATA there: the following forward
        assert texts(r.answer) == ["a.example.org. 300 IN AAAA 2001:db8::2"]
        r = await query(srv.port(), "nope.example.org.", "A")  # NXDOMAIN is not NODATA
        assert r.rcode() == dns.rcode.NXDOMAIN
        r = await query(srv.port(), "b.example.org.", "TXT", tcp=True)
        assert texts(r.answer) == ['b.example.org. 300 IN TXT "one"']


@pytest.mark.parametrize(("body", "error"), [
    ("next_on_nodata x", "Wrong argument count or unexpected line ending after 'x'"),
    ("source_address not-an-ip", "invalid IP address: not-an-ip"),
    ("source_address", "Wrong argument count or unexpected line ending after 'source_address'"),
])
async def test_option_errors(body: str, error: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n forward . 127.0.0.1 {{\n  {body}\n }}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == f"plugin/forward: Testfile:3 - Error during parsing: {error}"


async def test_resolver_for_host_name_targets() -> None:
    """`resolver` resolves a host-name TO with the given DNS server instead of the system's."""
    names = {"example.org.": ["example.org. 3600 IN SOA ns.example.org. h.example.org. 1 3600 600 86400 30",
                              "up.example.org. 300 IN A 127.0.0.1"]}
    with Unbound(names) as res, Unbound(Z2) as up:
        port = up.addr.rsplit(":", 1)[1]
        cf = f". {{\n forward . up.example.org:{port} {{\n  resolver {res.addr}\n }}\n}}\n"
        async with running(cf) as srv:
            r = await query(srv.port(), "a.example.org.", "AAAA")
            assert texts(r.answer) == ["a.example.org. 300 IN AAAA 2001:db8::2"]


@pytest.mark.parametrize("arg", ["not-an-ip", "10.0.0.1:x:y"])
async def test_resolver_must_be_addresses(arg: str) -> None:
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n forward . 127.0.0.1 {{\n  resolver {arg}\n }}\n}}\n"):
            pass
    assert str(e.value) == f'plugin/forward: resolver must be an IP address or IP:port: "{arg}"'


async def test_source_address_not_local_with_unlimited_attempts_ends() -> None:
    """Every attempt fails before it sends (the source address is not this host's: bind fails) and
    `max_connect_attempts 0` sets no cap: the 5 s budget still ends the query with SERVFAIL (the
    budget starts at the first failure when no send ever happened)."""
    cf = (". {\n forward . 127.0.0.1:9 {\n  source_address 192.0.2.55\n  max_connect_attempts 0\n"
          "  max_fails 0\n }\n}\n")
    async with running(cf) as srv:
        r = await query(srv.port(), "a.example.org.", "A", timeout=30.0)
        assert r.rcode() == dns.rcode.SERVFAIL
