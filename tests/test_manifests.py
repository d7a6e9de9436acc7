"""The Kubernetes manifests in examples/kubernetes validate against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

MANIFESTS = sorted((Path(__file__).resolve().parent.parent / "examples" / "kubernetes").glob("*.yaml"))


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in MANIFESTS:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                out.append((f"{path.name}#{i}", doc))
    return out


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_manifest_validates(where: str, doc: dict) -> None:
    kv.validate(doc, kv.latest_version(), strict=True)


def test_both_roles_are_present() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in documents()}
    for need in [("Deployment", "coredns"), ("Service", "kube-dns"), ("ClusterRole", "system:coredns"),
                 ("HorizontalPodAutoscaler", "coredns"), ("PodDisruptionBudget", "coredns"),
                 ("DaemonSet", "node-local-dns"), ("Service", "kube-dns-upstream")]:
        assert need in kinds
    svc = next(d for _, d in documents() if d["kind"] == "Service" and d["metadata"]["name"] == "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.240.16.10"


def test_configmap_corefiles_are_the_examples_and_parse() -> None:
    from pycoredns import directives
    from pycoredns.corefile import parse

    root = Path(__file__).resolve().parent.parent / "examples"
    maps = {d["metadata"]["name"]: d["data"]["Corefile"] for _, d in documents() if d["kind"] == "ConfigMap"}
    assert maps["coredns"] == (root / "cluster-dns" / "Corefile").read_text()
    assert maps["node-local-dns"] == (root / "node-local-dns" / "Corefile").read_text()
    for text in maps.values():
        parse(text, "Corefile", directives=directives.directives(), read_file=lambda p: "")
