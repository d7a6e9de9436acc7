"""A self-contained demo: the Kubernetes API test server with the fixture cluster, and pycoredns
serving it as cluster DNS (examples/demo/Corefile) on 127.0.0.1:1053.

    python -m pycoredns.demo [-dns.port 1053]
    dig @127.0.0.1 -p 1053 kube-dns.kube-system.svc.cluster.local
    dig @127.0.0.1 -p 1053 _http._tcp.web.ns1.svc.cluster.local SRV
    dig @127.0.0.1 -p 1053 example.org          # not a cluster name: whoami answers
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from .cli import main as cli_main

COREFILE = Path(__file__).resolve().parent.parent / "examples" / "demo" / "Corefile"


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m pycoredns.demo", allow_abbrev=False)
    p.add_argument("-dns.port", "--dns.port", "-p", dest="port", default="1053")
    p.add_argument("-quiet", "--quiet", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, APIServer(load_objects(FIXTURE_CLUSTER)) as api:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        api.write_kubeconfig(kubeconfig)
        os.environ["DEMO_KUBECONFIG"] = kubeconfig
        os.environ["DEMO_PORT"] = args.port
        print(f"Kubernetes API test server (fixture cluster) on {api.url}", flush=True)
        return cli_main(["-conf", str(COREFILE), *(["-quiet"] if args.quiet else [])])


if __name__ == "__main__":
    sys.exit(main())
