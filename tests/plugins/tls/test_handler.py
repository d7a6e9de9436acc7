"""DNS over TLS through a running server: the block's chain behind a TLS listener, client certificates."""

from __future__ import annotations

import ssl

import dns.asyncquery
import dns.edns
import dns.message
import pytest
import trio
from conftest import free_port, running
from pycoredns_conformance.upstream import make_tls_cert
from test_kubernetes_tls import make_certs


def tls_port(srv) -> int:
    return next(lst.bound_port for lst in srv.instance.listeners.values() if lst.transport == "tls")


def client_context(ca: str | None = None, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


async def test_dns_over_tls(tmp_path) -> None:
    cert, key = make_tls_cert(str(tmp_path))
    cf = f"tls://.:0 {{\n tls {cert} {key}\n nsid tls-replica\n local\n}}\n"
    async with running(cf) as srv:
        q = dns.message.make_query("localhost.", "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=tls_port(srv), timeout=5, ssl_context=client_context(cert))
        assert [rr.to_text() for rr in r.answer] == ["localhost. 604800 IN A 127.0.0.1"]
        assert [o.to_wire() for o in r.options if o.otype == dns.edns.NSID] == [b"tls-replica"]
        assert srv.instance.banner() == [f"tls://.:{tls_port(srv)}"]


async def test_tls_key_without_tls_plugin_is_plain_tcp() -> None:
    async with running("tls://.:0 {\n local\n}\n") as srv:
        q = dns.message.make_query("localhost.", "AAAA")
        r = await dns.asyncquery.tcp(q, "127.0.0.1", port=tls_port(srv), timeout=5)
        assert [rr.to_text() for rr in r.answer] == ["localhost. 604800 IN AAAA ::1"]


async def test_client_auth_require_and_verify(tmp_path) -> None:
    make_certs(tmp_path)
    d = tmp_path
    cf = (f"tls://.:0 {{\n tls {d / 'server.crt'} {d / 'server.key'} {d / 'ca.crt'} {{\n"
          f"  client_auth require_and_verify\n }}\n local\n}}\n")
    async with running(cf) as srv:
        port = tls_port(srv)
        q = dns.message.make_query("localhost.", "A")
        good = client_context(str(d / "ca.crt"), (str(d / "client.crt"), str(d / "client.key")))
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=good)
        assert len(r.answer) == 1
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError, trio.BrokenResourceError)):
            no_cert = client_context(str(d / "ca.crt"))
            await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=no_cert)


async def test_reload_keeps_serving_tls(tmp_path) -> None:
    cert, key = make_tls_cert(str(tmp_path))
    port = free_port()
    async with running(f"tls://.:{port} {{\n tls {cert} {key}\n local\n}}\n") as srv:
        q = dns.message.make_query("localhost.", "A")
        for _ in range(2):
            r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=client_context(cert))
            assert len(r.answer) == 1
            assert await srv.reload()
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=client_context(cert))
        assert len(r.answer) == 1


async def test_keylog_written(tmp_path) -> None:
    cert, key = make_tls_cert(str(tmp_path))
    keylog = tmp_path / "keys.log"
    async with running(f"tls://.:0 {{\n tls {cert} {key} {{\n  keylog {keylog}\n }}\n local\n}}\n") as srv:
        q = dns.message.make_query("localhost.", "A")
        await dns.asyncquery.tls(q, "127.0.0.1", port=tls_port(srv), timeout=5, ssl_context=client_context(cert))
    assert "CLIENT_" in keylog.read_text() or "SERVER_" in keylog.read_text()


async def test_reload_keeps_the_tls_listener(tmp_path) -> None:
    """A reload hands the same DoT socket to the new configuration (the process pool), as it does the
    plain DNS ones: nothing is closed, so nothing the kernel holds for it is reset, and `:0` keeps
    its port. The new configuration's certificate serves the connections made after the swap."""
    cert, key = make_tls_cert(str(tmp_path))
    async with running(f"tls://.:0 {{\n tls {cert} {key}\n local\n}}\n") as srv:
        before = next(lst.tcp_sock for lst in srv.instance.listeners.values() if lst.transport == "tls")
        port = tls_port(srv)
        assert await srv.reload()
        after = next(lst.tcp_sock for lst in srv.instance.listeners.values() if lst.transport == "tls")
        assert after is before and before.fileno() >= 0 and tls_port(srv) == port
        q = dns.message.make_query("localhost.", "A")
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=port, timeout=5, ssl_context=client_context(cert))
        assert len(r.answer) == 1
