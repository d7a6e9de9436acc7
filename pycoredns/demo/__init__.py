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
import ctypes
import importlib.util
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from importlib.resources import as_file, files

from ..cli import main as cli_main

APISERVER = "pycoredns_conformance.apiserver"
_PR_SET_PDEATHSIG = 1
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
                                "--kubeconfig-out", kubeconfig], stdout=subprocess.PIPE,
                               preexec_fn=_die_with_parent)
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


def _die_with_parent() -> None:
    """In the API server child: SIGTERM when the demo dies, however it dies (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _wait_for_apiserver(api: subprocess.Popen[bytes]) -> str | None:
    """The server's URL once it has written the kubeconfig; None if it exits or stays silent too long.

    Reads the pipe's fd directly: a buffered readline could swallow the second line while
    `select` waits for more.
    """
    assert api.stdout is not None
    fd = api.stdout.fileno()
    url, buf = None, b""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:  # exited
            return None
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in (raw.decode(errors="replace") for raw in lines):
            if line.startswith("apiserver listening on "):
                url = line.split()[-1]
            elif line.startswith("kubeconfig written to "):
                return url
    return None
