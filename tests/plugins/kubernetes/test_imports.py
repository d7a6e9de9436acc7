"""Import only what the role needs: kubernetes-asyncio's generated client stays out of the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NODE_LOCAL = """.:0 {
    errors
    cache 30
    loadbalance
    forward . 127.0.0.1:9
}
"""


def test_node_local_corefile_imports_no_kubernetes_client(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(NODE_LOCAL)
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pycoredns", "-validate", "-conf", str(conf)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert "pycoredns.corefile" in imported  # the check saw the server's imports
    assert not [m for m in imported if m.startswith(("kubernetes_asyncio", "aiohttp", "pycoredns.plugins.kubernetes"))]


def test_watch_loads_configuration_and_transport_only() -> None:
    code = """
import sys
from pycoredns.plugins.kubernetes.client import modules
Configuration, ApiClient, config = modules()
assert callable(config.load_kube_config) and callable(config.load_incluster_config)
loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.")]
generated = ("kubernetes_asyncio.client.api.", "kubernetes_asyncio.client.models.")
assert not [m for m in loaded if m.startswith(generated)], loaded
import kubernetes_asyncio.client as full  # other code in the process still gets the whole client
assert full.CoreV1Api and full.V1Service
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_client_defers_what_the_watch_never_calls() -> None:
    """urllib3, multiprocessing.pool and dateutil.parser wait for their first use, which still works."""
    code = """
import sys
from pycoredns.plugins.kubernetes.client import modules
Configuration, ApiClient, config = modules()
deferred = ("urllib3", "multiprocessing.pool", "dateutil.parser")
assert not [m for m in deferred if m in sys.modules], [m for m in deferred if m in sys.modules]
import kubernetes_asyncio.client.api_client as api_client
cfg = Configuration()
cfg.username, cfg.password = "user", "secret"
assert cfg.get_basic_auth_token() == "Basic dXNlcjpzZWNyZXQ="  # urllib3.util.make_headers
assert api_client.parse("2024-01-02T03:04:05Z").year == 2024  # dateutil.parser.parse
pool = api_client.ThreadPool(1)  # multiprocessing.pool.ThreadPool
assert pool.apply(lambda: 7) == 7
pool.close()
import multiprocessing.pool, urllib3
assert type(sys.modules["urllib3"]) is type(sys)
assert multiprocessing.pool.ThreadPool.__module__ == "multiprocessing.pool"
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_client_loads_the_default_cas_on_first_use() -> None:
    """aiohttp's two default SSL contexts and an ApiClient's (no CA file: the system CAs) load the CA bundle
    when first used, with the same certificates as an ordinary default context."""
    code = """
import asyncio
import ssl
from pycoredns.plugins.kubernetes.client import api_client, modules
Configuration, ApiClient, config = modules()
assert "set_default_verify_paths" not in ssl.SSLContext.__dict__  # the stand-in only lives while loading
import aiohttp.connector
cfg = Configuration()
cfg.host = "http://127.0.0.1:1"


async def build():
    return api_client(ApiClient, cfg)  # its aiohttp session wants a running loop

api = asyncio.run(build())
ctxs = [aiohttp.connector._SSL_CONTEXT_VERIFIED, aiohttp.connector._SSL_CONTEXT_UNVERIFIED,
        api.rest_client.pool_manager.connector._ssl]
assert all(sorted(c.__dict__) == ["cert_store_stats", "get_ca_certs", "wrap_bio", "wrap_socket"] for c in ctxs)
want = ssl.create_default_context().cert_store_stats()
assert want["x509_ca"] > 0
first, second, third = ctxs
first.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.com")  # a handshake's start
assert first.cert_store_stats() == want and not first.__dict__
assert len(second.get_ca_certs()) == want["x509_ca"] and not second.__dict__
assert third.cert_store_stats() == want
assert third.verify_mode == ssl.CERT_REQUIRED and third.check_hostname
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
