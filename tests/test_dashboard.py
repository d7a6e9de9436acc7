"""examples/grafana/pycoredns.json: valid JSON, and every metric and label its queries name is one that
pycoredns exports (taken from a real /metrics scrape of a server running both roles' plugins, plus the
registry for the families only a node-cache start registers)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest
from conftest import ServerProcess, free_port
from prometheus_client.parser import text_string_to_metric_families
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from pycoredns import directives, metrics

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "examples" / "grafana" / "pycoredns.json"
PROMETHEUS_LABELS = {"job", "instance"}  # added by the scrape, not by the exporter
METRIC = re.compile(r"\b((?:coredns|pycoredns|process)_[a-z0-9_]+)")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")


def _queries(node) -> list[str]:
    """Every `expr` in the dashboard, panels inside rows included."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for v in node.values() for q in _queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _queries(v)]
    return []


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, set[str]]:
    """Metric name (as queried: `_total`, `_bucket`, ...) -> its label names."""
    tmp = tmp_path_factory.mktemp("dash")
    port, prom, health, ready, dead = (free_port() for _ in range(5))
    with APIServer(load_objects(FIXTURE_CLUSTER)) as api:
        kubeconfig = tmp / "kubeconfig"
        api.write_kubeconfig(str(kubeconfig))
        corefile = tmp / "Corefile"
        corefile.write_text(
            f".:{port} {{\n    bind 127.0.0.1\n    errors\n    health 127.0.0.1:{health}\n"
            f"    ready 127.0.0.1:{ready}\n    prometheus 127.0.0.1:{prom}\n    reload 2s\n"
            f"    hosts {{\n        10.0.0.1 a.example.test\n        fallthrough\n    }}\n"
            f"    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {kubeconfig}\n"
            f"        fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 30\n    loadbalance\n"
            f"    forward . 127.0.0.1:{dead} {{\n        max_fails 1\n    }}\n}}\n")
        srv = ServerProcess(["-conf", str(corefile), "-lastgood", str(tmp / "lastgood")])
        try:
            srv.wait_for_line("CoreDNS-", timeout=60)
            for name in ("kube-dns.kube-system.svc.cluster.local", "a.example.test", "nowhere.example.org"):
                for _ in range(2):  # the second is a cache hit
                    dns.query.udp(dns.message.make_query(name, "A", want_dnssec=True), "127.0.0.1", port=port,
                                  timeout=6)
            with urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=10) as r:
                text = r.read().decode()
        finally:
            srv.stop()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names = {"counter": [family.name + "_total"], "histogram": [family.name + s for s in
                                                                    ("_bucket", "_sum", "_count")]}
        for name in names.get(family.type, [family.name]):
            out.setdefault(name, set()).update(k for s in family.samples for k in s.labels)
    # Families registered only in modes the scrape did not run (node-cache networking needs root and
    # changes the host): their names and label names from the registry.
    importlib.import_module("pycoredns.nodecache")
    for d in directives.available():
        directives.setup_function(d)
    for name, m in metrics.REGISTRY.metrics.items():
        names = {"histogram": [name + s for s in ("_bucket", "_sum", "_count")]}.get(m.kind, [name])
        for n in names:
            out.setdefault(n, set()).update(m.label_names, ["le"] if m.kind == "histogram" else [])
    return out


def test_dashboard_is_valid_json_for_grafana() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "pycoredns" and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names
    assert len(_queries(board)) >= 30


def test_every_queried_metric_and_label_is_exported(exported: dict[str, set[str]]) -> None:
    board = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for expr in _queries(board):
        used = METRIC.findall(expr)
        assert used, expr
        queried.update(used)
        missing = [m for m in used if m not in exported]
        assert not missing, (expr, missing)
        labels = set().union(*(exported[m] for m in used)) | {"le"} | PROMETHEUS_LABELS
        grouped = {x.strip() for group in BY.findall(expr) for x in group.split(",") if x.strip()}
        matched = set(MATCHER.findall(expr))
        assert grouped | matched <= labels, (expr, (grouped | matched) - labels)
    # both roles and pycoredns's own families are on the board
    for family in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                   "coredns_dns_request_duration_seconds_bucket", "coredns_cache_hits_total",
                   "coredns_proxy_request_duration_seconds_bucket",
                   "coredns_kubernetes_dns_programming_duration_seconds_bucket",
                   "pycoredns_lastgood_active", "coredns_nodecache_setup_errors_total"):
        assert family in queried, family


def test_dashboard_file_is_what_the_repository_ships() -> None:
    """A plain JSON file (no templating engine needed): `python -m json.tool` accepts it."""
    r = subprocess.run([sys.executable, "-m", "json.tool", str(DASHBOARD)], capture_output=True, timeout=30)
    assert r.returncode == 0
