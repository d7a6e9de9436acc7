"""A Kubernetes API server for tests and demos: the real REST protocol for Namespaces, Services,
Pods, Endpoints and EndpointSlices, driven by the real kubernetes-asyncio client and kubectl.

    from pycoredns_conformance.apiserver import APIServer
    with APIServer(load_objects("conformance/fixtures/cluster.yaml")) as api:
        api.write_kubeconfig(tmp / "kubeconfig")
        ...
"""

from pathlib import Path

from .errors import APIError
from .generate import generate_cluster
from .loader import load_objects, parse_text
from .server import APIServer
from .store import Store

#: The fixture cluster described in conformance/fixtures/README.md.
FIXTURE_CLUSTER = Path(__file__).resolve().parent.parent / "fixtures" / "cluster.yaml"

__all__ = [
    "FIXTURE_CLUSTER",
    "APIError",
    "APIServer",
    "Store",
    "generate_cluster",
    "load_objects",
    "parse_text",
]
