"""CLI: ``python -m pycoredns_conformance.apiserver --listen 127.0.0.1:0 --objects FILE --kubeconfig-out PATH``.

Prints ``apiserver listening on http://HOST:PORT`` as its first stdout line, then serves until
SIGINT/SIGTERM. SIGUSR1 drops all watches, SIGUSR2 expires all resourceVersions; the same and
"go unreachable for N seconds" are also at POST /_control/... (see APIServer._control).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from . import FIXTURE_CLUSTER
from .generate import generate_cluster
from .loader import load_objects
from .server import APIServer


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` or ``PORT``."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    if ":" not in text:
        return "127.0.0.1", int(text)
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground."""
    ap = argparse.ArgumentParser(prog="python -m pycoredns_conformance.apiserver",
                                 description="Kubernetes API test server (Namespaces, Services, Pods, "
                                 "Endpoints, EndpointSlices) over plain HTTP.")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to bind (port 0 = ephemeral)")
    ap.add_argument("--objects", action="append", default=[], metavar="FILE",
                    help="YAML/JSON file or directory of objects; repeatable. Without --objects and "
                    "--generate-services the fixture cluster (conformance/fixtures/cluster.yaml) is served.")
    ap.add_argument("--kubeconfig-out", metavar="PATH", help="write a kubeconfig for this server here")
    ap.add_argument("--generate-services", type=int, default=0, metavar="N",
                    help="add N synthetic services (namespaces bench-*) for benchmarks")
    ap.add_argument("--endpoints-per-service", type=int, default=10, metavar="M")
    ap.add_argument("--service-cidr", default="10.240.16.0/20")
    ap.add_argument("--service-cidr-v6", default="fd00:10:240::/112")
    ap.add_argument("--bookmark-interval", type=float, default=5.0, metavar="SECONDS")
    ap.add_argument("--history-size", type=int, default=10000, help="watch events kept for resuming")
    ap.add_argument("--namespace-delay", type=float, default=1.0, metavar="SECONDS",
                    help="how long a deleted namespace stays Terminating before it and its contents go "
                    "(so `kubectl delete -f` of a namespace and its objects works as on a cluster)")
    args = ap.parse_args(argv)

    host, port = parse_listen(args.listen)
    objs = []
    for f in args.objects:
        objs.extend(load_objects(f))
    if args.generate_services:
        objs.extend(generate_cluster(args.generate_services, args.endpoints_per_service))
    if not args.objects and not args.generate_services:
        objs.extend(load_objects(FIXTURE_CLUSTER))
    api = APIServer(objs, host=host, port=port, service_cidr=args.service_cidr,
                    service_cidr_v6=args.service_cidr_v6, history_size=args.history_size,
                    bookmark_interval=args.bookmark_interval, namespace_delay=args.namespace_delay)
    api.start()
    print(f"apiserver listening on {api.url}", flush=True)
    if args.kubeconfig_out:
        api.write_kubeconfig(args.kubeconfig_out)
        print(f"kubeconfig written to {args.kubeconfig_out}", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=api.drop_watches).start())
    signal.signal(signal.SIGUSR2, lambda *_: api.expire_resource_versions())
    while not done.is_set():
        time.sleep(0.2)
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
