"""forward's DNS-over-HTTPS upstreams (`https://`, `doh_method`) through a running server, as CoreDNS 1.14.7.

The real upstream is unbound's DoH endpoint (`Unbound(https=True)`, HTTP/2 over TLS with a self-signed
certificate made for the test); tests/doh_upstream.py's `DohServer` shows the requests forward sends
and misbehaves where needed. Clients are dnspython over UDP and TCP.
"""

from __future__ import annotations

import base64
import logging

import dns.rcode
import dns.rdatatype
import pytest
import trio
from conftest import query, running
from doh_upstream import MIME, DohServer
from upstream import DeadPort, Unbound, reply_for

from pycoredns import metrics
from pycoredns.instance import StartupError


@pytest.fixture(scope="module")
def ub():
    with Unbound(https=True) as u:
        yield u


def block(to: str, options: str = "") -> str:
    opts = f" {{\n{options}\n }}" if options else ""
    return f". {{\n errors\n forward . {to}{opts}\n}}\n"


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def forwards(srv) -> list:
    return [h for b in srv.instance.blocks for h in b.handlers if h.name == "forward"]


def answer_with(status: int = 200, ctype: str = MIME):
    """A DohServer responder: a reply to the query (ID 0 as asked) with this status and content type."""
    return lambda req: (status, ctype, reply_for(req.query))


def metric(name: str, *labels: str) -> float:
    m = metrics.REGISTRY.metrics.get(name)
    return m.get(*labels) if m is not None else 0.0  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_answers_over_doh(ub, method: str) -> None:
    """A and AAAA, NXDOMAIN with the SOA, over UDP and TCP clients, POST and GET."""
    opts = f"  tls {ub.cert_file}\n  doh_method {method}"
    async with running(block(f"https://127.0.0.1:{ub.https_port}", opts)) as srv:
        for tcp in (False, True):
            r = await query(srv.port(), "a6.example.org.", "A", tcp=tcp)
            assert texts(r.answer) == ["a6.example.org. 300 IN A 192.0.2.6"]
            r = await query(srv.port(), "a6.example.org.", "AAAA", tcp=tcp)
            assert texts(r.answer) == ["a6.example.org. 300 IN AAAA 2001:db8::6"]
            r = await query(srv.port(), "missing.example.org.", "A", tcp=tcp)
            assert r.rcode() == dns.rcode.NXDOMAIN
            assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
        (f,) = forwards(srv)
        assert f.pending() == 0
        assert len(f.proxies[0].conns["tcp-tls"]) == 1  # one connection carried all of them


async def test_many_queries_in_flight(ub) -> None:
    """300 concurrent queries share a few HTTP/2 connections; every one is answered."""
    async with running(block(f"https://127.0.0.1:{ub.https_port}", f"  tls {ub.cert_file}")) as srv:
        rcodes: list[int] = []

        async def one(i: int) -> None:
            r = await query(srv.port(), f"s{i % 10}.example.org.", "A", timeout=10)
            rcodes.append(r.rcode())

        async with trio.open_nursery() as n:
            for i in range(300):
                n.start_soon(one, i)
        assert rcodes == [dns.rcode.NOERROR] * 300
        (f,) = forwards(srv)
        assert f.pending() == 0
        assert 1 <= len(f.proxies[0].conns["tcp-tls"]) <= 4


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_request_shape(method: str) -> None:
    """What CoreDNS sends: ID 0, /dns-query, application/dns-message; GET: ?dns= base64url without padding."""
    with DohServer(answer_with()) as s:
        async with running(block(f"https://{s.addr}", f"  tls {s.cert_file}\n  doh_method {method}")) as srv:
            r = await query(srv.port(), "a.example.org.", "A", tcp=True)
            assert texts(r.answer) == ["a.example.org. 60 IN A 192.0.2.99"]  # with the client's ID (dnspython checks)
    (req,) = s.requests
    assert req.method == method
    assert req.headers[":authority"] == s.addr
    assert req.headers["content-type"] == MIME
    assert req.headers["accept"] == MIME
    q = req.query
    assert q[:2] == b"\x00\x00"
    assert b"\x01a\x07example\x03org\x00\x00\x01\x00\x01" in q
    if method == "GET":
        assert req.path == "/dns-query?dns=" + base64.urlsafe_b64encode(q).decode().rstrip("=")
        assert req.body == b""
    else:
        assert req.path == "/dns-query"
        assert req.body == q


@pytest.mark.parametrize("respond", [answer_with(500), answer_with(404, "text/plain")])
async def test_status_and_content_type_are_not_checked(respond) -> None:
    """CoreDNS reads the body whatever the status and content type: a DNS message there is the answer."""
    with DohServer(respond) as s:
        async with running(block(f"https://{s.addr}", f"  tls {s.cert_file}")) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 60 IN A 192.0.2.99"]


@pytest.mark.parametrize(("body", "error"), [
    (b"Not Found\n", "dns: overflow unpacking uint16"),  # CoreDNS: "bad header extra count: dns: overflow ..."
    (b"", "dns: overflow unpacking uint16"),  # CoreDNS: "bad header id: dns: overflow unpacking uint16"
    (b"\x00" * 70000, "http: request body too large"),  # the same text as CoreDNS's, without the request
])
async def test_bad_bodies_are_servfail(body: bytes, error: str, log_lines) -> None:
    """A body that is no DNS message fails the attempt: SERVFAIL, the error logged, the server keeps serving."""
    with DohServer(lambda req: (400, "text/plain", body)) as s:
        async with running(block(f"https://{s.addr}", f"  tls {s.cert_file}\n  max_fails 0")) as srv:
            for tcp in (False, True):
                r = await query(srv.port(), "a.example.org.", "A", tcp=tcp)
                assert r.rcode() == dns.rcode.SERVFAIL
            assert forwards(srv)[0].pending() == 0
    errors = [line for line in log_lines if "[ERROR]" in line]
    assert len(errors) == 2
    assert all(line.endswith(f"a.example.org. A: {error}") for line in errors), errors


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_upstream_down_is_servfail(method: str, log_lines) -> None:
    with DeadPort() as d:
        async with running(block(f"https://{d.addr}", f"  doh_method {method}")) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert r.rcode() == dns.rcode.SERVFAIL
    url = f"https://{d.addr}/dns-query"
    label = f'Get "{url}?dns=' if method == "GET" else f'Post "{url}": '
    errors = [line for line in log_lines if "[ERROR]" in line]
    assert errors and label in errors[0], errors
    assert errors[0].endswith(f"dial tcp {d.addr}: connect: connection refused")


async def test_silent_upstream_times_out(log_lines) -> None:
    """No response within CoreDNS's 2 s http.Client timeout: the attempt fails (here the only one)."""
    with DohServer(lambda req: None) as s:
        opts = f"  tls {s.cert_file}\n  max_connect_attempts 1\n  max_fails 0"
        async with running(block(f"https://{s.addr}", opts)) as srv:
            r = await query(srv.port(), "a.example.org.", "A", timeout=8)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert forwards(srv)[0].pending() == 0
    errors = [line for line in log_lines if "[ERROR]" in line]
    assert len(errors) == 1, errors  # the query's error only: the stuck connection closes quietly
    assert errors[0].endswith(f'A: Post "https://{s.addr}/dns-query": context deadline exceeded '
                              "(Client.Timeout exceeded while awaiting headers)")


async def test_goaway_resends_on_a_new_connection() -> None:
    """A GOAWAY before the request was processed: the query goes again on a fresh connection."""
    with DohServer(answer_with(), goaway_first=True) as s:
        async with running(block(f"https://{s.addr}", f"  tls {s.cert_file}")) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 60 IN A 192.0.2.99"]
    assert s.connections == 2
    assert len(s.requests) == 2


async def test_tls_verification(ub, log_lines) -> None:
    """`tls` (the CA) and `tls_servername` apply as for tls://; without tls_servername the IP is verified;
    a `%name` suffix on an https:// TO is ignored (CoreDNS)."""
    port = ub.https_port
    ok = [
        (f"https://127.0.0.1:{port}", f"  tls {ub.cert_file}"),
        (f"https://127.0.0.1:{port}", f"  tls {ub.cert_file}\n  tls_servername dns.example.test"),
        (f"https://127.0.0.1%wrong.example:{port}", f"  tls {ub.cert_file}"),
    ]
    for to, opts in ok:
        async with running(block(to, opts)) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 300 IN A 192.0.2.1"], (to, opts)
    bad = [
        (f"https://127.0.0.1:{port}", ""),  # system CAs: the self-signed certificate is not trusted
        (f"https://127.0.0.1:{port}", f"  tls {ub.cert_file}\n  tls_servername wrong.example"),
    ]
    for to, opts in bad:
        async with running(block(to, opts)) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert r.rcode() == dns.rcode.SERVFAIL, (to, opts)
    errors = [line for line in log_lines if "[ERROR]" in line]
    assert len(errors) == 2
    for line in errors:
        assert f'Post "https://127.0.0.1:{port}/dns-query": tls: failed to verify certificate: ' in line


async def test_health_checks_and_failover(ub, caplog) -> None:
    """A dead DoH upstream fails over to the next one; its POST probes fail until it is marked down."""
    caplog.set_level(logging.CRITICAL)
    with DeadPort() as d:
        to = f"https://{d.addr} https://127.0.0.1:{ub.https_port}"
        opts = f"  tls {ub.cert_file}\n  policy sequential\n  max_fails 1\n  health_check 50ms"
        async with running(block(to, opts)) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 300 IN A 192.0.2.1"]
            (f,) = forwards(srv)
            dead = f.proxies[0]
            with trio.move_on_after(5):
                while not dead.down(1):
                    await trio.sleep(0.05)
            assert dead.down(1)
            assert metric("coredns_proxy_healthcheck_failures_total", "forward", d.addr) >= 2
            r = await query(srv.port(), "a6.example.org.", "AAAA")
            assert texts(r.answer) == ["a6.example.org. 300 IN AAAA 2001:db8::6"]


async def test_probe_of_a_live_upstream_is_healthy(ub) -> None:
    """The POST probe gets a DNS reply from a live DoH upstream (whatever doh_method says)."""
    opts = f"  tls {ub.cert_file}\n  doh_method GET"
    async with running(block(f"https://127.0.0.1:{ub.https_port}", opts)) as srv:
        (f,) = forwards(srv)
        assert await f.proxies[0].probe() is True
    with DohServer(lambda req: (200, MIME, b"garbage")) as s:
        async with running(block(f"https://{s.addr}", f"  tls {s.cert_file}")) as srv:
            (f,) = forwards(srv)
            assert await f.proxies[0].probe() is False
            assert s.requests[0].method == "POST"


@pytest.mark.parametrize(("body", "error"), [
    ("forward . https://127.0.0.1/dns-query",
     "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): "
     "https://127.0.0.1/dns-query"),
    ("forward . 127.0.0.1 https://127.0.0.1:8443/",
     "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): "
     "https://127.0.0.1:8443/"),
    ("forward . https://127.0.0.1 {\n  doh_method PUT\n }", "doh_method must be either POST or GET"),
    ("forward . https://127.0.0.1 {\n  doh_method get\n }", "doh_method must be either POST or GET"),
    ("forward . https://127.0.0.1/ {\n  doh_method PUT\n }", "doh_method must be either POST or GET"),
    ("forward . https://127.0.0.1 {\n  doh_method\n }",
     "Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'doh_method'"),
    ("forward . https://127.0.0.1 {\n  doh_method GET POST\n }",
     "Testfile:3 - Error during parsing: unknown property 'POST'"),
])
async def test_setup_errors(body: str, error: str) -> None:
    """Texts as CoreDNS 1.14.7 prints them (compared with `coredns -conf`)."""
    with pytest.raises(StartupError) as e:
        async with running(f". {{\n {body}\n}}\n", filename="Testfile"):
            pass
    assert str(e.value) == f"plugin/forward: {error}"


async def test_tls_file_errors(tmp_path) -> None:
    """`tls` file errors (for tls:// and https:// alike) as CoreDNS's pkg/tls words them."""
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    with DohServer(answer_with()) as s:
        cert, key = s.cert_file, s.key_file
        cases = [
            (f"tls {tmp_path}/none.pem", f"error reading {tmp_path}/none.pem: open {tmp_path}/none.pem: "
                                         "no such file or directory"),
            (f"tls {junk}", "could not read root certs: %!s(<nil>)"),
            (f"tls {tmp_path}/none.pem {key}", f"could not load TLS cert: open {tmp_path}/none.pem: "
                                               "no such file or directory"),
            (f"tls {junk} {key}", "could not load TLS cert: tls: failed to find any PEM data in certificate input"),
            (f"tls {cert} {junk}", "could not load TLS cert: tls: failed to find any PEM data in key input"),
            (f"tls {cert} {key} {tmp_path}/none.pem", f"error reading {tmp_path}/none.pem: open {tmp_path}/none.pem: "
                                                      "no such file or directory"),
        ]
        for opt, error in cases:
            for to in ("https://127.0.0.1", "tls://127.0.0.1"):
                with pytest.raises(StartupError) as e:
                    async with running(f". {{\n forward . {to} {{\n  {opt}\n }}\n}}\n"):
                        pass
                assert str(e.value) == f"plugin/forward: {error}", (to, opt)
        async with running(block(f"https://{s.addr}", f"  tls {cert} {key} {cert}")) as srv:  # client cert + CA
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 60 IN A 192.0.2.99"]


async def test_source_address_and_host_name_targets(ub) -> None:
    """`source_address` binds DoH connections (probes too); a host-name https:// TO is resolved at startup
    (here with `resolver`) and, as in CoreDNS, its certificate is verified for the address it resolved to."""
    with DohServer(answer_with()) as s:
        opts = f"  tls {s.cert_file}\n  source_address 127.0.0.2"
        async with running(block(f"https://{s.addr}", opts)) as srv:
            r = await query(srv.port(), "a.example.org.", "A")
            assert texts(r.answer) == ["a.example.org. 60 IN A 192.0.2.99"]
            assert await forwards(srv)[0].proxies[0].probe() is True
        assert [host for host, _port in s.peers] == ["127.0.0.2", "127.0.0.2"]
    names = {"example.test.": ["up.example.test. 300 IN A 127.0.0.1"]}
    with Unbound(names) as res:
        opts = f"  tls {ub.cert_file}\n  resolver {res.addr}"
        async with running(block(f"https://up.example.test:{ub.https_port}", opts)) as srv:
            (f,) = forwards(srv)
            assert [(p.to, p.transport) for p in f.proxies] == [(f"127.0.0.1:{ub.https_port}", "https")]
            r = await query(srv.port(), "a6.example.org.", "AAAA")
            assert texts(r.answer) == ["a6.example.org. 300 IN AAAA 2001:db8::6"]
