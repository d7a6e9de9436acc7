"""A self-contained demo: the Kubernetes API test server with its fixture cluster, and pycoredns
serving it as cluster DNS (the packaged `pycoredns/demo/Corefile`) on 127.0.0.1:1053.

    pip install ./conformance '.[demo]'         # from a checkout: the product plus the test kit
    python -m pycoredns.demo [-dns.port 1053]
    dig @127.0.0.1 -p 1053 kube-dns.kube-system.svc.cluster.local
    dig @127.0.0.1 -p 1053 _http._tcp.web.ns1.svc.cluster.local SRV
    dig @127.0.0.1 -p 1053 example.org          # not a cluster name: whoami answers

The API test server belongs to the `pycoredns-conformance` distribution (the `demo` extra). The
product never imports it: the demo runs it as a child process (`python -m
pycoredns_conformance.apiserver`, which serves the fixture cluster by default) and reads the
kubeconfig it writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import selectors
import subprocess
import sys
import tempfile
import time
from importlib.resources import as_file, files

from ..cli import main as cli_main

APISERVER = "pycoredns_conformance.apiserver"
STARTUP_TIMEOUT = 60.0
MISSING = ("python -m pycoredns.demo needs the Kubernetes API test server of the pycoredns-conformance "
           "distribution: pip install 'pycoredns[demo]' (from a checkout: pip install ./conformance '.[demo]')")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pycoredns.demo", allow_abbrev=False)
    p.add_argument("-dns.port", "--dns.port", "-p", dest="port", default="1053")
    p.add_argument("-quiet", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if importlib.util.find_spec(APISERVER.split(".")[0]) is None:
        print(MISSING, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, as_file(files(__name__) / "Corefile") as corefile:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        api = subprocess.Popen([sys.executable, "-m", APISERVER, "--listen", "127.0.0.1:0",
                                "--kubeconfig-out", kubeconfig], stdout=subprocess.PIPE, text=True)
        try:
            url = _wait_for_apiserver(api)
            if url is None:
                print("the Kubernetes API test server did not start", file=sys.stderr)
                return 1
            os.environ["DEMO_KUBECONFIG"] = kubeconfig
            os.environ["DEMO_PORT"] = args.port
            print(f"Kubernetes API test server (fixture cluster) on {url}", flush=True)
            return cli_main(["-conf", str(corefile), *(["-quiet"] if args.quiet else [])])
        finally:
            api.terminate()
            try:
                api.wait(10)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()


def _wait_for_apiserver(api: subprocess.Popen) -> str | None:
    """The server's URL once it has written the kubeconfig; None if it exits or stays silent too long."""
    assert api.stdout is not None
    url = None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(api.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            line = api.stdout.readline()
            if not line:  # exited
                return None
            if line.startswith("apiserver listening on "):
                url = line.split()[-1]
            elif line.startswith("kubeconfig written to "):
                return url
    return None
