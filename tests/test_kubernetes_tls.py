"""kubernetes `endpoint https://... ` with `tls CERT KEY CACERT`: mutual TLS in front of the API test server.

A small TLS-terminating TCP proxy (client certificates required) pipes bytes to the plain-HTTP test
server; certificates come from the openssl command line.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import dns.rcode
import pytest
from conftest import free_port, query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


class TLSProxy:
    """TLS (client certificate required) on one port, plain TCP to the API server behind it."""

    def __init__(self, d: Path, backend_port: int) -> None:
        self.port = free_port()
        self.backend = backend_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.crt"))
        self.ctx.load_cert_chain(str(d / "server.crt"), str(d / "server.key"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda _loop, _ctx: None)  # refused handshakes are expected
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", self.backend)
        except OSError:
            w.close()
            return
        await asyncio.gather(self._pipe(r, bw), self._pipe(br, w))

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.start_server(self._client, "127.0.0.1", self.port, ssl=self.ctx)
            self._ready.set()
            await asyncio.Event().wait()

        try:
            self._loop.run_until_complete(main())
        except RuntimeError:
            pass

    def __enter__(self) -> TLSProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def test_endpoint_with_mutual_tls(tmp_path: Path) -> None:
    make_certs(tmp_path)
    with APIServer(load_objects(FIXTURE_CLUSTER)) as api:
        api.start()
        with TLSProxy(tmp_path, api.port) as proxy:
            cf = (f".:0 {{\n kubernetes cluster.local {{\n  endpoint https://127.0.0.1:{proxy.port}\n"
                  f"  tls {tmp_path}/client.crt {tmp_path}/client.key {tmp_path}/ca.crt\n  startup_timeout 30s\n"
                  f" }}\n}}\n")
            async with running(cf) as srv:
                m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
                assert m.rcode() == dns.rcode.NOERROR
                assert {rd.to_text() for rrset in m.answer for rd in rrset} == {"10.240.16.101"}
                assert proxy.handshakes >= 3
            # without the client certificate the API is not reachable: unsynced, misses are SERVFAIL
            cf = (f".:0 {{\n kubernetes cluster.local {{\n  endpoint https://127.0.0.1:{proxy.port}\n"
                  f"  startup_timeout 300ms\n }}\n}}\n")
            async with running(cf) as srv:
                m = await query(srv.port(), "svc1.ns1.svc.cluster.local.", "A")
                assert m.rcode() == dns.rcode.SERVFAIL
