"""Operators' extra configs: the example Corefiles' `(common)` snippet and optional ConfigMap import.

The examples are tested as shipped: a small template helper swaps their fixed addresses, ports and
the extra-config mount path for loopback ones, and the extra ConfigMap is built with kubelet's
layout (`..data` symlink swapped atomically).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import free_port, query, running
from pycoredns.plugins import reload as reload_plugin
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects
from reload_helpers import Prober, configmap, probing, serve_file, write

from pycoredns import directives
from pycoredns.corefile import CorefileError, parse
from pycoredns.metrics import REGISTRY

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLUSTER = EXAMPLES / "cluster-dns" / "Corefile"
NODE_LOCAL = EXAMPLES / "node-local-dns" / "Corefile"
COMMON = ["errors", "loop", "reload"]  # in both examples' snippet
UPSTREAM = ". {\n hosts {\n  192.0.2.7 www.example.com\n  192.0.2.8 www.example.net\n }\n}\n"


def render(example: Path, subs: dict[str, str]) -> str:
    """The example with `subs` applied, minus lines of directives this build does not have yet."""
    text = example.read_text()
    for old, new in subs.items():
        assert old in text, old
        text = text.replace(old, new)
    have = set(directives.available())
    known = set(directives.directives())
    kept = [line for line in text.splitlines(keepends=True)
            if not (line.split()[:1] and line.split()[0] in known and line.split()[0] not in have
                    and line.strip() == line.split()[0])]
    return "".join(kept)


def blocks_of(text: str, name: str = "Corefile") -> dict[str, dict[str, list[str]]]:
    """Keys → {directive: token texts} after full parsing (directives validated)."""
    out = {}
    for b in parse(text, name, directives=directives.directives()):
        out[" ".join(b.key_texts)] = {d: [t.text for t in toks] for d, toks in b.tokens.items()}
    return out


OPERATOR = "(mine) {\n cache 10\n}\nexample.com:53 {\n import common\n import mine\n forward . 1.2.3.4\n}\n"


@pytest.mark.parametrize("example", [CLUSTER, NODE_LOCAL], ids=["cluster-dns", "node-local-dns"])
def test_examples_with_and_without_extra(example, tmp_path):
    extra = str(tmp_path / "extra")
    text = example.read_text().replace("/etc/coredns-extra/", f"{extra}/")
    plain = blocks_of(text)  # no extra directory at all: a warning only
    for tokens in plain.values():
        assert set(COMMON) <= set(tokens)
    os.mkdir(extra)
    assert blocks_of(text) == plain  # empty directory
    configmap(extra, {"Corefile": ""})
    assert blocks_of(text) == plain  # empty key (and kubelet's ..data dirs are not matched)
    configmap(extra, {"Corefile": "# nothing yet\n"})
    assert blocks_of(text) == plain
    configmap(extra, {"Corefile": OPERATOR})
    with_extra = blocks_of(text)
    assert list(with_extra) == [*plain, "example.com:53"]
    op = with_extra["example.com:53"]
    assert set(COMMON) <= set(op) and op["forward"] == ["forward", ".", "1.2.3.4"] and op["cache"] == ["cache", "10"]
    if example == NODE_LOCAL:  # operators' blocks listen where the cache listens
        assert op["bind"] == ["bind", "169.254.20.10", "10.240.16.10"]


@pytest.mark.parametrize("example", [CLUSTER, NODE_LOCAL], ids=["cluster-dns", "node-local-dns"])
def test_redeclared_common_names_file_and_line(example, tmp_path):
    extra = str(tmp_path / "extra")
    configmap(extra, {"Corefile": "# my additions\n(common) {\n errors\n}\n"})
    text = example.read_text().replace("/etc/coredns-extra/", f"{extra}/")
    with pytest.raises(CorefileError) as e:
        blocks_of(text)
    want = "Error during parsing: redeclaration of previously declared snippet common"
    assert str(e.value) == f"{extra}/Corefile:2 - {want}"


def operator_block(zone: str, port: int, upstream: int) -> str:
    return f"{zone}:{port} {{\n import common\n forward . 127.0.0.1:{upstream}\n}}\n"


def node_local_subs(port: int, upstream: int, extra: str) -> dict[str, str]:
    return {
        "169.254.20.10:8080": f"127.0.0.1:{free_port()}",
        "169.254.20.10": "127.0.0.1",
        "10.240.16.10": "127.0.0.2",
        ":53 {": f":{port} {{",
        "prometheus :9253": f"prometheus 127.0.0.1:{free_port()}",
        "__PILLAR__CLUSTER__DNS__": f"127.0.0.1:{upstream}",
        "__PILLAR__UPSTREAM__SERVERS__": f"127.0.0.1:{upstream}",
        "/etc/coredns-extra/": f"{extra}/",
    }


async def test_node_local_example_live(tmp_path, logs):
    """The node-local example serving, while operators change their ConfigMap: nothing is lost."""
    async with running(UPSTREAM) as up:
        port, extra, main = free_port(), str(tmp_path / "extra"), str(tmp_path / "Corefile")
        write(main, render(NODE_LOCAL, node_local_subs(port, up.port(), extra)))
        async with serve_file(main) as srv:
            poller = reload_plugin.poller(srv)
            assert (await query(port, "www.example.com")).answer[0][0].to_text() == "192.0.2.7"  # via `.`
            assert (await query(port, "www.example.com", host="127.0.0.2")).rcode() == 0
            failed = REGISTRY.metrics["coredns_reload_failed_total"].get()
            async with probing(Prober(port, "www.example.com", "A", "IN"), Prober(port, "www.example.net", "A", "IN"),
                               Prober(port, "www.example.com", "A", "IN", tcp=True)) as probers:
                # operators add a block (the ConfigMap appears): forwarded with force_tcp, shares `common`
                configmap(extra, {"Corefile": f"example.com:{port} {{\n import common\n forward . 127.0.0.1:{up.port()}"
                                              f" {{\n  force_tcp\n }}\n}}\n"})
                assert await poller.tick()
                assert "example.com." in {z for lst in srv.instance.listeners.values() for z, _ in lst.zone_names}
                # a broken edit: the old configuration keeps serving
                configmap(extra, {"Corefile": f"example.com:{port} {{\n import common\n forward\n}}\n"})
                assert await poller.tick()
                # redeclaring `common` is a parse error: CoreDNS's reload warns and keeps polling
                configmap(extra, {"Corefile": "(common) {\n errors\n}\n"})
                assert not await poller.tick()
                assert logs.has(f"[WARNING] plugin/reload: Corefile parse failed: {extra}/Corefile:1 - "
                                "Error during parsing: redeclaration of previously declared snippet common")
                # fixed: example.net gets its own block
                configmap(extra, {"Corefile": operator_block("example.net", port, up.port())})
                assert await poller.tick()
            for p in probers:
                assert p.lost == 0 and p.answered == p.sent, p
            assert [p.answers for p in probers] == [["192.0.2.7"], ["192.0.2.8"], ["192.0.2.7"]]
            assert REGISTRY.metrics["coredns_reload_failed_total"].get() == failed + 1
            zones = {z for lst in srv.instance.listeners.values() for z, _ in lst.zone_names}
            assert "example.net." in zones and "example.com." not in zones


async def test_cluster_dns_example_live(tmp_path):
    """The cluster-dns example against the Kubernetes API test server, with an operator block."""
    with APIServer(load_objects(FIXTURE_CLUSTER)) as api:
        api.start()
        kc = api.write_kubeconfig(tmp_path / "kc")
        async with running(UPSTREAM) as up:
            port, extra, main = free_port(), str(tmp_path / "extra"), str(tmp_path / "Corefile")
            subs = {
                ".:53 {": f".:{port} {{",
                "prometheus :9153": f"prometheus 127.0.0.1:{free_port()}",
                "health {": f"health 127.0.0.1:{free_port()} {{",
                "lameduck 5s": "lameduck 100ms",
                "    ready\n": f"    ready 127.0.0.1:{free_port()}\n",
                "ip6.arpa {\n": f"ip6.arpa {{\n       kubeconfig {kc}\n",
                "forward . /etc/resolv.conf {": f"forward . 127.0.0.1:{up.port()} {{",
                "/etc/coredns-extra/": f"{extra}/",
            }
            configmap(extra, {"Corefile": operator_block("example.com", port, up.port())})
            write(main, render(CLUSTER, subs))
            async with serve_file(main) as srv:
                svc = "svc1.ns1.svc.cluster.local."
                assert (await query(port, svc)).answer[0][0].to_text() == "10.240.16.101"
                assert (await query(port, "www.example.com")).answer[0][0].to_text() == "192.0.2.7"
                async with probing(Prober(port, svc, "A", "IN"), Prober(port, "www.example.com", "A", "IN")) as probers:
                    configmap(extra, {"Corefile": ""})  # the operator removes the key's content
                    assert await reload_plugin.poller(srv).tick()
                for p in probers:
                    assert p.lost == 0 and p.answered == p.sent, p
                assert [p.answers for p in probers] == [["10.240.16.101"], ["192.0.2.7"]]  # `.` forwards it now
