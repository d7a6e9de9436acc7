"""forward plugin through a running pycoredns, with real unbound upstreams on loopback (tests/upstream.py)."""

from __future__ import annotations

import itertools
import logging
import os
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio

sys.path.insert(0, os.path.dirname(__file__))

from conftest import query, running
from upstream import BlackHole, DeadPort, GarbageUpstream, Unbound, reply_for

from pycoredns import metrics
from pycoredns.instance import StartupError

# A second upstream with different data for the same names, to see which upstream answered.
ZONES2 = {
    "example.org.": [
        "example.org. 3600 IN SOA ns.example.org. hostmaster.example.org. 2 3600 600 86400 30",
        "a.example.org. 300 IN A 192.0.2.2",
        "only2.example.org. 300 IN A 192.0.2.22",
    ],
    "example.net.": ["a.example.net. 300 IN A 198.51.100.2"],
}


@pytest.fixture(scope="module")
def ub():
    with Unbound() as u:
        yield u


@pytest.fixture(scope="module")
def ub2():
    with Unbound(ZONES2) as u:
        yield u


def metric(name: str, *labels: str) -> float:
    m = metrics.REGISTRY.metrics.get(name)
    return m.get(*labels) if m is not None else 0.0  # type: ignore[attr-defined]


def first_a(r: dns.message.Message) -> str:
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return rrset[0].address
    raise AssertionError(f"no A in {r}")


def block(to: str, options: str = "", extra: str = "") -> str:
    opts = f" {{\n{options}\n }}" if options else ""
    return f". {{\n errors\n{extra} forward . {to}{opts}\n}}\n"


async def poll(pred, timeout: float = 5.0, step: float = 0.05) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(step)
        return True
    return False


# -- answers -------------------------------------------------------------------------------------


async def test_answers_pass_through(ub):
    async with running(block(ub.addr)) as srv:
        port = srv.port()
        r = await query(port, "a.example.org", "A")
        assert r.rcode() == dns.rcode.NOERROR and first_a(r) == "192.0.2.1"
        assert r.answer[0].ttl == 300 and r.flags & dns.flags.AA
        r = await query(port, "a6.example.org", "AAAA")
        assert r.answer[0][0].address == "2001:db8::6"
        r = await query(port, "www.example.org", "A")
        assert r.answer[0].rdtype == dns.rdatatype.CNAME
        r = await query(port, "mx.example.org", "MX")
        assert r.answer[0][0].exchange.to_text() == "mail.example.org."
        r = await query(port, "many.example.org", "A")
        assert len(r.answer[0]) == 20
        r = await query(port, "A.Example.ORG", "A")  # case preserved in the question, still matches
        assert r.question[0].name.to_text() == "A.Example.ORG." and first_a(r) == "192.0.2.1"


async def test_nxdomain_and_nodata_keep_soa(ub):
    async with running(block(ub.addr)) as srv:
        r = await query(srv.port(), "missing.example.org", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert r.authority and r.authority[0].rdtype == dns.rdatatype.SOA
        r = await query(srv.port(), "nodata.example.org", "AAAA")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        assert r.authority[0].rdtype == dns.rdatatype.SOA
        r = await query(srv.port(), "outside.example.com", "A")  # unbound refuses names outside its zones
        assert r.rcode() == dns.rcode.REFUSED


async def test_chaos_class_forwarded(ub):
    """forward in the block lets CH-class queries through the server (which REFUSES them otherwise)."""
    async with running(block(ub.addr)) as srv:
        r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
        assert r.rcode() == dns.rcode.NOERROR and b"unbound" in r.answer[0][0].strings[0]


async def test_edns_passed_and_mirrored(ub):
    async with running(block(ub.addr)) as srv:
        r = await query(srv.port(), "a.example.org", "A", use_edns=0, payload=1232, want_dnssec=True)
        assert r.edns == 0 and r.ednsflags & dns.flags.DO
        assert first_a(r) == "192.0.2.1"


async def test_many_queries_in_flight_share_one_socket(ub):
    """A burst of concurrent UDP queries: every one answered with its own ID and question."""
    names = [("a", "192.0.2.1"), ("short", "192.0.2.5"), ("long", "192.0.2.86"), ("nodata", "192.0.2.7")]
    results: list[tuple[str, str]] = []
    misses = metric("coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "udp")
    async with running(block(ub.addr)) as srv:

        async def one(i: int) -> None:
            name, want = names[i % len(names)]
            r = await query(srv.port(), f"{name}.example.org", "A", timeout=5)
            results.append((first_a(r), want))

        async with trio.open_nursery() as n:
            for i in range(200):
                n.start_soon(one, i)
        (f,) = forward_handlers(srv)
        assert not f.proxies[0].udp.pending
    assert metric("coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "udp") == misses + 1  # one socket
    assert len(results) == 200
    assert all(got == want for got, want in results)


# -- transports ----------------------------------------------------------------------------------


async def test_protocol_mirrors_client(ub):
    """UDP client -> UDP upstream (unbound truncates the big TXT); TCP client -> TCP upstream (full answer)."""
    async with running(block(ub.addr)) as srv:
        before = metric("coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "tcp")
        r = await query(srv.port(), "big.example.org", "TXT", use_edns=0, payload=4096)
        assert r.flags & dns.flags.TC and not r.answer
        r = await query(srv.port(), "big.example.org", "TXT", tcp=True)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 2
        assert metric("coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "tcp") == before + 1
        r = await query(srv.port(), "a.example.org", "A", tcp=True)
        assert first_a(r) == "192.0.2.1"
        assert metric("coredns_proxy_conn_cache_hits_total", "forward", ub.addr, "tcp") >= 1


async def test_truncated_udp_reply_passed_through(ub):
    async with running(block(ub.addr)) as srv:
        r = await query(srv.port(), "medium.example.org", "TXT")  # no EDNS: > 512 bytes
        assert r.flags & dns.flags.TC and not r.answer
        r = await query(srv.port(), "medium.example.org", "TXT", use_edns=0, payload=1232)
        assert not r.flags & dns.flags.TC and r.answer


async def test_force_tcp(ub):
    """force_tcp: a UDP client with a 4096 buffer gets the 2 kB answer unbound only sends over TCP."""
    async with running(block(ub.addr, "  force_tcp")) as srv:
        r = await query(srv.port(), "big.example.org", "TXT", use_edns=0, payload=4096)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 2


async def test_prefer_udp_retries_truncated_over_tcp(ub):
    async with running(block(ub.addr, "  prefer_udp")) as srv:
        udp_before = metric("coredns_proxy_conn_cache_hits_total", "forward", ub.addr, "udp") + metric(
            "coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "udp")
        r = await query(srv.port(), "big.example.org", "TXT", tcp=True)
        assert len(r.answer[0]) == 2
        udp_after = metric("coredns_proxy_conn_cache_hits_total", "forward", ub.addr, "udp") + metric(
            "coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "udp")
        assert udp_after == udp_before + 1  # the TCP client's query went over UDP first
        r = await query(srv.port(), "big.example.org", "TXT", use_edns=0, payload=4096)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 2


async def test_oversized_udp_reply_becomes_empty_tc():
    with GarbageUpstream("oversized") as g:
        async with running(block(g.addr)) as srv:
            r = await query(srv.port(), "x.example.org", "A")  # no EDNS: 512-byte buffer
            assert r.flags & dns.flags.TC and not r.answer and r.rcode() == dns.rcode.NOERROR


# -- policies and failover -----------------------------------------------------------------------


async def test_policy_sequential(ub, ub2):
    async with running(block(f"{ub.addr} {ub2.addr}", "  policy sequential")) as srv:
        got = {first_a(await query(srv.port(), "a.example.org", "A")) for _ in range(6)}
        assert got == {"192.0.2.1"}


async def test_policy_round_robin(ub, ub2):
    async with running(block(f"{ub.addr} {ub2.addr}", "  policy round_robin")) as srv:
        got = [first_a(await query(srv.port(), "a.example.org", "A")) for _ in range(6)]
        assert all(a != b for a, b in itertools.pairwise(got)), got
        assert set(got) == {"192.0.2.1", "192.0.2.2"}


async def test_policy_random_uses_both(ub, ub2):
    async with running(block(f"{ub.addr} {ub2.addr}")) as srv:
        got = {first_a(await query(srv.port(), "a.example.org", "A")) for _ in range(40)}
        assert got == {"192.0.2.1", "192.0.2.2"}


async def test_failover_to_second_upstream_when_first_killed():
    async with (
        Unbound() as u1,
        Unbound(ZONES2) as u2,
        running(block(f"{u1.addr} {u2.addr}", "  policy sequential")) as srv,
    ):
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        await trio.to_thread.run_sync(u1.stop)
        r = await query(srv.port(), "a.example.org", "A")
        assert first_a(r) == "192.0.2.2"
        await trio.to_thread.run_sync(u1.start)  # same port again
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"


async def test_health_check_marks_down_and_up(ub2):
    dead = DeadPort()
    to = f"127.0.0.1:{dead.port}"
    opts = "  policy sequential\n  max_fails 1\n  health_check 50ms"
    used = lambda: metric("coredns_proxy_conn_cache_hits_total", "forward", to, "udp") + metric(  # noqa: E731
        "coredns_proxy_conn_cache_misses_total", "forward", to, "udp")
    async with running(block(f"{to} {ub2.addr}", opts)) as srv:
        r = await query(srv.port(), "a.example.org", "A")  # first upstream refuses: answered by the second
        assert first_a(r) == "192.0.2.2"
        assert await poll(lambda: metric("coredns_proxy_healthcheck_failures_total", "forward", to) >= 2)
        n = used()
        for _ in range(5):
            assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.2"
        assert used() == n  # down: skipped without a try
        async with Unbound(port=dead.port):
            async def back() -> bool:
                return first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"

            ok = False
            with trio.move_on_after(5):
                while not (ok := await back()):
                    await trio.sleep(0.05)
            assert ok


async def test_all_down_failfast_and_broken_metric():
    d1, d2 = DeadPort(), DeadPort()
    opts = "  max_fails 1\n  health_check 50ms\n  failfast_all_unhealthy_upstreams"
    async with running(block(f"{d1.addr} {d2.addr}", opts)) as srv:
        r = await query(srv.port(), "a.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert await poll(lambda: metric("coredns_proxy_healthcheck_failures_total", "forward", d2.addr) >= 2
                          and metric("coredns_proxy_healthcheck_failures_total", "forward", d1.addr) >= 2)
        before = metric("coredns_forward_healthcheck_broken_total")
        r = await query(srv.port(), "a.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        assert metric("coredns_forward_healthcheck_broken_total") == before + 1


async def test_failover_rcodes(ub, ub2):
    opts = "  policy sequential\n  failover NXDOMAIN REFUSED"
    async with running(block(f"{ub.addr} {ub2.addr}", opts)) as srv:
        r = await query(srv.port(), "only2.example.org", "A")
        assert first_a(r) == "192.0.2.22"
        r = await query(srv.port(), "outside.example.com", "A")  # both REFUSED: the last reply is written
        assert r.rcode() == dns.rcode.REFUSED


async def test_next_rcode_hands_to_following_forward(ub, ub2):
    corefile = f". {{\n forward . {ub.addr} {{\n  next NXDOMAIN\n }}\n forward . {ub2.addr}\n}}\n"
    async with running(corefile) as srv:
        assert first_a(await query(srv.port(), "only2.example.org", "A")) == "192.0.2.22"
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"


async def test_next_ignored_without_following_forward(ub):
    async with running(block(ub.addr, "  next NXDOMAIN", extra=" whoami\n")) as srv:
        r = await query(srv.port(), "missing.example.org", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN


async def test_except_and_chained_forwards(ub, ub2):
    corefile = (f". {{\n forward . {ub.addr} {{\n  except example.net\n }}\n"
                f" forward example.net {ub2.addr}\n}}\n")
    async with running(corefile) as srv:
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        assert first_a(await query(srv.port(), "a.example.net", "A")) == "198.51.100.2"


async def test_except_without_next_is_servfail(ub):
    async with running(block(ub.addr, "  except example.net")) as srv:
        r = await query(srv.port(), "a.example.net", "A")
        assert r.rcode() == dns.rcode.SERVFAIL


async def test_from_zone_limits_forwarding(ub):
    async with running(f". {{\n forward example.org {ub.addr}\n whoami\n}}\n") as srv:
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        r = await query(srv.port(), "a.example.net", "A")  # not in FROM: next plugin (whoami)
        assert r.additional


# -- failures ------------------------------------------------------------------------------------


@pytest.fixture
def logged():
    """Lines logged on the `pycoredns` logger during the test (the errors plugin's output)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"[{record.levelname}] {record.getMessage()}")

    h = Keep()
    logging.getLogger("pycoredns").addHandler(h)
    yield lines
    logging.getLogger("pycoredns").removeHandler(h)


async def test_dead_port_servfail(logged):
    dead = DeadPort()
    async with running(block(dead.addr)) as srv:
        r = await query(srv.port(), "a.example.org", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        r = await query(srv.port(), "a.example.org", "A", tcp=True)
        assert r.rcode() == dns.rcode.SERVFAIL
    out = "\n".join(logged)
    assert "[ERROR] plugin/errors: 2 a.example.org. A: read udp 127.0.0.1:" in out
    assert f"->{dead.addr}: read: connection refused" in out
    assert f"[ERROR] plugin/errors: 2 a.example.org. A: dial tcp {dead.addr}: connect: connection refused" in out


async def test_black_hole_servfail_within_deadline():
    with BlackHole() as bh:
        async with running(block(bh.addr, "  max_fails 0")) as srv:  # no health probes: count queries
            # Two attempts of 2s each (max_connect_attempts = 2 x upstreams), inside the 5s deadline.
            r = await query(srv.port(), "a.example.org", "A", timeout=8)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert bh.queries == 2


async def test_black_hole_does_not_block_other_upstreams(ub):
    with BlackHole() as bh:
        corefile = (f"example.net {{\n forward . {bh.addr}\n}}\n"
                    f". {{\n forward . {ub.addr}\n}}\n")
        async with running(corefile) as srv:
            answers: list[str] = []
            async with trio.open_nursery() as n:

                async def slow() -> None:
                    r = await query(srv.port(), "a.example.net", "A", timeout=8)
                    assert r.rcode() == dns.rcode.SERVFAIL

                n.start_soon(slow)
                await trio.sleep(0.1)
                for _ in range(10):
                    answers.append(first_a(await query(srv.port(), "a.example.org", "A", timeout=1)))
            assert answers == ["192.0.2.1"] * 10


async def test_max_concurrent_refused(logged):
    with BlackHole() as bh:
        opts = "  max_concurrent 2\n  read_timeout 500ms"
        async with running(block(bh.addr, opts)) as srv:
            before = metric("coredns_forward_max_concurrent_rejects_total")
            rcodes: list[int] = []

            async def one(i: int) -> None:
                r = await query(srv.port(), f"q{i}.example.org", "A", timeout=5)
                rcodes.append(r.rcode())

            async with trio.open_nursery() as n:
                for i in range(6):
                    n.start_soon(one, i)
            assert sorted(rcodes) == [dns.rcode.SERVFAIL] * 2 + [dns.rcode.REFUSED] * 4
            assert metric("coredns_forward_max_concurrent_rejects_total") == before + 4
            refused = [x for x in logged if x.endswith(": concurrent queries exceeded maximum 2")]
            assert len(refused) == 4 and refused[0].startswith("[ERROR] plugin/errors: 5 q")
            assert sum(x.endswith(": i/o timeout") for x in logged) == 2


@pytest.mark.parametrize(
    ("mode", "rcode"),
    [("garbage", dns.rcode.SERVFAIL), ("short", dns.rcode.SERVFAIL), ("wrong_id", dns.rcode.SERVFAIL),
     ("wrong_question", dns.rcode.FORMERR)],
)
async def test_bad_upstream_replies(mode, rcode, ub):
    with GarbageUpstream(mode) as g:
        corefile = (f"example.org {{\n forward . {g.addr} {{\n  read_timeout 300ms\n }}\n}}\n"
                    f"example.net {{\n forward . {ub.addr}\n}}\n")
        async with running(corefile) as srv:
            for tcp in (False, True):
                r = await query(srv.port(), "a.example.org", "A", tcp=tcp)
                assert r.rcode() == rcode, (tcp, r)
            # still serving
            assert first_a(await query(srv.port(), "a.example.net", "A")) == "198.51.100.1"


async def test_mismatched_id_ignored_then_right_reply_used():
    with GarbageUpstream("wrong_id_then_ok") as g:
        async with running(block(g.addr)) as srv:
            for tcp in (False, True):
                r = await query(srv.port(), "a.example.org", "A", tcp=tcp)
                assert first_a(r) == "192.0.2.99"


# -- TO forms and setup ----------------------------------------------------------------------------


def forward_handlers(srv) -> list:
    return [h for b in srv.instance.blocks for h in b.handlers if h.name == "forward"]


async def test_resolv_conf_file(tmp_path, ub):
    rc = tmp_path / "resolv.conf"
    rc.write_text("# comment\nsearch example.org\nnameserver 127.0.0.1\nnameserver ::1\noptions ndots:5\n")
    empty = tmp_path / "empty.conf"
    empty.write_text("search example.org\n")
    async with running(block(f"{rc} {empty} {ub.addr}")) as srv:
        (f,) = forward_handlers(srv)
        assert [p.to for p in f.proxies] == ["127.0.0.1:53", "[::1]:53", ub.addr]


async def test_resolv_conf_without_nameservers_alone_is_an_error(tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("search example.org\n")
    with pytest.raises(StartupError) as ei:
        async with running(block(str(empty))):
            pass
    assert str(ei.value) == "plugin/forward: no nameservers found"


async def test_to_forms(ub):
    to = f"dns://{ub.addr} [::1]:5399 127.0.0.2 localhost"
    async with running(block(to, "  policy sequential")) as srv:
        (f,) = forward_handlers(srv)
        tos = [p.to for p in f.proxies]
        assert tos[:3] == [ub.addr, "[::1]:5399", "127.0.0.2:53"]
        assert "127.0.0.1:53" in tos[3:]  # localhost, resolved once at startup
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"


async def test_ipv6_upstream():
    async with Unbound(ipv6=True) as u, running(block(f"[::1]:{u.port}")) as srv:
        for tcp in (False, True):
            assert first_a(await query(srv.port(), "a.example.org", "A", tcp=tcp)) == "192.0.2.1"


async def test_fifteen_upstreams_allowed():
    to = " ".join(f"127.0.0.{i}:53" for i in range(1, 16))
    async with running(block(to)) as srv:
        assert len(forward_handlers(srv)[0].proxies) == 15


CONFIG_ERRORS = [
    ("forward\n", "Wrong argument count or unexpected line ending after 'forward'"),
    ("forward .\n", "Wrong argument count or unexpected line ending after '.'"),
    ("forward . " + " ".join(f"127.0.0.{i}" for i in range(1, 17)) + "\n", "more than 15 TOs configured: 16"),
    ("forward . grpc://127.0.0.1\n", "'grpc' is not supported as a destination protocol in forward: "
                                     "grpc://127.0.0.1:443"),
    ("forward . quic://127.0.0.1\n", "'quic' is not supported as a destination protocol in forward: "
                                     "quic://127.0.0.1:853"),
    ("forward . 127.0.0.1 {\n policy foo\n}\n", "unknown policy 'foo'"),
    ("forward . 127.0.0.1 {\n bogus\n}\n", "unknown property 'bogus'"),
    ("forward . 127.0.0.1 {\n max_fails x\n}\n", 'strconv.ParseUint: parsing "x": invalid syntax'),
    ("forward . 127.0.0.1 {\n max_fails -1\n}\n", 'strconv.ParseUint: parsing "-1": invalid syntax'),
    ("forward . 127.0.0.1 {\n max_concurrent -1\n}\n", "max_concurrent can't be negative: -1"),
    ("forward . 127.0.0.1 {\n max_concurrent x\n}\n", 'strconv.Atoi: parsing "x": invalid syntax'),
    ("forward . 127.0.0.1 {\n health_check -1s\n}\n", "health_check can't be negative: -1000000000"),
    ("forward . 127.0.0.1 {\n health_check 1x\n}\n", 'time: invalid duration "1x"'),
    ("forward . 127.0.0.1 {\n health_check 1s foo\n}\n", "health_check: unknown option foo"),
    ("forward . 127.0.0.1 {\n expire -1s\n}\n", "expire can't be negative: -1s"),
    ("forward . 127.0.0.1 {\n failover NOERROR\n}\n", "NoError cannot be used in failover"),
    ("forward . 127.0.0.1 {\n next FOO\n}\n", "FOO is not a valid rcode"),
    ("forward . 127.0.0.1 {\n force_tcp yes\n}\n", "Wrong argument count or unexpected line ending after 'yes'"),
    ("forward . 127.0.0.1 {\n max_fails\n}\n", "Wrong argument count or unexpected line ending after 'max_fails'"),
    ("forward . tls://127.0.0.1%a.example {\n tls_servername b.example\n}\n",
     "both forward ('b.example') and proxy level ('a.example') TLS servernames are set for upstream proxy "
     "'tls://127.0.0.1:853'"),
    ("forward . /nonexistent/resolv.conf\n",
     'failed to resolve "/nonexistent/resolv.conf": lookup /nonexistent/resolv.conf: no such host'),
    ("forward . a..b\n", 'not an IP address, file, or valid domain: "a..b"'),
    ("forward . unix:///tmp/dns.sock\n", "'unix' is not supported as a destination protocol in forward: "
                                        "unix:///tmp/dns.sock"),
    ("forward . https://127.0.0.1/dns-query\n", "paths are not allowed in HTTPS upstream addresses (the "
                                               "/dns-query path is used by default): https://127.0.0.1/dns-query"),
    ("forward . 127.0.0.1:99999\n", 'invalid upstream address "127.0.0.1:99999": invalid port 99999'),
    ("forward . 127.0.0.1 {\n max_connect_attempts x\n}\n", 'strconv.ParseUint: parsing "x": invalid syntax'),
    ("forward . 127.0.0.1 {\n health_check 1s domain\n}\n",
     "Wrong argument count or unexpected line ending after 'domain'"),
]


async def test_unresolvable_host_name_is_a_startup_error():
    with pytest.raises(StartupError) as ei:
        async with running(block("upstream.invalid")):
            pass
    assert str(ei.value).startswith('plugin/forward: failed to resolve "upstream.invalid": lookup upstream.invalid')
    assert str(ei.value).endswith(": no such host")


@pytest.mark.parametrize(("body", "message"), CONFIG_ERRORS)
async def test_config_errors(body, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n {body}}}\n"):
            pass
    text = str(ei.value)
    assert text.startswith("plugin/forward: ")
    assert text.endswith(message), text


# -- DNS over TLS --------------------------------------------------------------------------------


async def test_dns_over_tls():
    async with Unbound(tls=True) as u:
        to = f"tls://127.0.0.1:{u.tls_port}"
        opts = f"  tls {u.cert_file}\n  tls_servername dns.example.test"
        async with running(block(to, opts)) as srv:
            for tcp in (False, True, False):
                assert first_a(await query(srv.port(), "a.example.org", "A", tcp=tcp)) == "192.0.2.1"
            label = f"127.0.0.1:{u.tls_port}"
            assert metric("coredns_proxy_conn_cache_misses_total", "forward", label, "tcp-tls") >= 1
            assert metric("coredns_proxy_conn_cache_hits_total", "forward", label, "tcp-tls") >= 2
        # per-upstream server name
        to = f"tls://127.0.0.1%dns.example.test:{u.tls_port}"
        async with running(block(to, f"  tls {u.cert_file}")) as srv:
            assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        # the certificate's IP SAN verifies without a server name
        async with running(block(f"tls://127.0.0.1:{u.tls_port}", f"  tls {u.cert_file}")) as srv:
            assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        # wrong name: verification fails -> SERVFAIL
        async with running(block(to.replace("dns.example.test", "other.test"), f"  tls {u.cert_file}")) as srv:
            assert (await query(srv.port(), "a.example.org", "A")).rcode() == dns.rcode.SERVFAIL


# -- metrics ---------------------------------------------------------------------------------------


async def test_request_duration_metric(ub):
    async with running(block(ub.addr)) as srv:
        h = metrics.REGISTRY.metrics["coredns_proxy_request_duration_seconds"]
        before = h.count("forward", ub.addr, "NXDOMAIN")  # type: ignore[attr-defined]
        await query(srv.port(), "missing.example.org", "A")
        assert h.count("forward", ub.addr, "NXDOMAIN") == before + 1  # type: ignore[attr-defined]



# -- connections, attempts, probes -----------------------------------------------------------------


async def test_pooled_connection_closed_by_upstream_is_retried():
    """A restart closes pooled TCP connections: the next query retries at once on a new connection."""
    async with Unbound() as u, running(block(u.addr, "  force_tcp")) as srv:
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        await trio.to_thread.run_sync(u.restart)
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"


async def test_expire_drops_idle_connections(ub):
    async with running(block(ub.addr, "  force_tcp\n  expire 100ms")) as srv:
        misses = lambda: metric("coredns_proxy_conn_cache_misses_total", "forward", ub.addr, "tcp")  # noqa: E731
        hits = lambda: metric("coredns_proxy_conn_cache_hits_total", "forward", ub.addr, "tcp")  # noqa: E731
        m0, h0 = misses(), hits()
        await query(srv.port(), "a.example.org", "A")
        await query(srv.port(), "a.example.org", "A")
        assert (misses(), hits()) == (m0 + 1, h0 + 1)  # reused while fresh
        await trio.sleep(0.3)
        await query(srv.port(), "a.example.org", "A")
        assert (misses(), hits()) == (m0 + 2, h0 + 1)  # expired: a new connection


async def test_max_connect_attempts():
    with BlackHole() as bh:
        opts = "  max_fails 0\n  read_timeout 200ms\n  max_connect_attempts 3"
        async with running(block(bh.addr, opts)) as srv:
            assert (await query(srv.port(), "a.example.org", "A")).rcode() == dns.rcode.SERVFAIL
            assert bh.queries == 3


async def test_health_check_probe_domain_and_no_rec():
    """A failed query starts probes: `<domain> IN NS`, RD cleared with no_rec; any reply counts as healthy."""
    seen: list[dns.message.Message] = []

    def upstream(data: bytes) -> list[bytes]:
        m = dns.message.from_wire(data)
        seen.append(m)
        if m.question[0].rdtype == dns.rdatatype.NS:
            return [dns.message.make_response(m).to_wire()]  # any reply: healthy
        return []  # queries time out

    with GarbageUpstream(upstream) as g:
        opts = "  read_timeout 200ms\n  max_connect_attempts 1\n  health_check 50ms no_rec domain probe.example"
        async with running(block(g.addr, opts)) as srv:
            assert (await query(srv.port(), "a.example.org", "A")).rcode() == dns.rcode.SERVFAIL
            assert await poll(lambda: any(m.question[0].rdtype == dns.rdatatype.NS for m in seen))
            probe = next(m for m in seen if m.question[0].rdtype == dns.rdatatype.NS)
            assert probe.question[0].name.to_text() == "probe.example."
            assert not probe.flags & dns.flags.RD
            await trio.sleep(0.2)
            assert sum(m.question[0].rdtype == dns.rdatatype.NS for m in seen) == 1  # healthy: probing stopped


def test_round_robin_order_matches_coredns():
    """round_robin starts one further each query and keeps the others in configured order."""
    from pycoredns.plugins.forward import RoundRobinPolicy

    p = RoundRobinPolicy()
    proxies = ["a", "b", "c"]
    assert [p.list(proxies) for _ in range(3)] == [["b", "a", "c"], ["c", "a", "b"], ["a", "b", "c"]]


async def test_reload_swaps_upstreams_and_closes_old_sockets(tmp_path, ub, ub2):
    from reload_helpers import serve_file, write

    path = str(tmp_path / "Corefile")
    write(path, block(ub.addr))
    async with serve_file(path) as srv:
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.1"
        (old,) = forward_handlers(srv)
        assert old.proxies[0].udp.sock is not None
        write(path, block(ub2.addr))
        assert await srv.reload()
        assert first_a(await query(srv.port(), "a.example.org", "A")) == "192.0.2.2"
        assert old.proxies[0].udp.sock is None  # the old configuration's upstream socket is closed


async def test_black_hole_over_tcp_and_tls(logged):
    """A listener that accepts and never answers: TCP read timeout; DoT handshake timeout. Both SERVFAIL."""
    with BlackHole() as bh:
        opts = "  max_fails 0\n  read_timeout 200ms\n  max_connect_attempts 1"
        async with running(block(bh.addr, opts + "\n  force_tcp")) as srv:
            assert (await query(srv.port(), "a.example.org", "A")).rcode() == dns.rcode.SERVFAIL
        async with running(block(f"tls://{bh.addr}", opts)) as srv:
            assert (await query(srv.port(), "a.example.org", "A", timeout=5)).rcode() == dns.rcode.SERVFAIL
    assert any(f"->{bh.addr}: i/o timeout" in x and "read tcp 127.0.0.1:" in x for x in logged)
    assert any(x.endswith(f"dial tcp {bh.addr}: i/o timeout") for x in logged)


async def test_upstream_ids_randomised_and_restored():
    seen_ids: list[int] = []

    def upstream(data: bytes) -> list[bytes]:
        seen_ids.append(int.from_bytes(data[:2], "big"))
        return [reply_for(data)]

    with GarbageUpstream(upstream) as g:
        async with running(block(g.addr)) as srv:
            client_ids = []
            for tcp in (False, True) * 4:
                q = dns.message.make_query("a.example.org", "A")
                client_ids.append(q.id)
                r = await query(srv.port(), "a.example.org", "A", tcp=tcp, id=q.id)
                assert r.id == q.id and first_a(r) == "192.0.2.99"
    assert len(seen_ids) == 8 and seen_ids != client_ids
