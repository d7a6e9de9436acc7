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
