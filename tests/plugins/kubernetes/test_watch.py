"""Lists in pages (limit/continue): a cluster listed in pages of 2 answers as one listed in one page."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest
from conftest import query, running
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

from plugins.kubernetes import watch
from tests.test_kubernetes_live import corefile

NAMES = [("kubernetes.default.svc.cluster.local.", "A"), ("kube-dns.kube-system.svc.cluster.local.", "SRV"),
         ("_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV"), ("svc1.ns1.svc.cluster.local.", "A"),
         ("headless.ns1.svc.cluster.local.", "A"), ("nope.ns1.svc.cluster.local.", "A"),
         ("1.16.240.10.in-addr.arpa.", "PTR")]


@pytest.fixture
def api():
    with APIServer(load_objects(FIXTURE_CLUSTER)) as server:
        server.start()
        yield server


async def answers(kc: Path) -> list[str]:
    """Each reply as text, without its id and the SOA serial (the time of the index's last change)."""
    async with running(corefile(kc)) as srv:
        texts = [(await query(srv.port(), name, qtype)).to_text().split("\n", 1)[1] for name, qtype in NAMES]
    return [re.sub(r"(SOA \S+ \S+ )\d+", r"\1<serial>", t) for t in texts]


async def test_paged_list_answers_as_one_page(api, tmp_path: Path, monkeypatch) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    whole = await answers(kc)
    monkeypatch.setattr(watch, "PAGE", 2)
    for (name, qtype), one, paged in zip(NAMES, whole, await answers(kc), strict=True):
        assert paged == one, (name, qtype)
    # real answers, not two equal failures
    assert "IN A 10.240.16.1" in whole[0] and "PTR kubernetes.default.svc" in whole[-1]



def test_collector_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with watch.collector_paused():
        with watch.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other list still decodes
    assert gc.isenabled()
    gc.disable()  # off before (an embedding program's choice): stays off
    try:
        with watch.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(("body", "token"), [
    (b'{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"abc"},"items":[]}', "abc"),
    (b'{"kind": "ServiceList", "metadata": {"continue": "a\\"b"}, "items": []}', 'a"b'),
    (b'{"kind":"ServiceList","metadata":{"resourceVersion":"7"},"items":[]}', ""),  # the last page
    (b'{"items":[{"metadata":{"name":"a"}}],"metadata":{"continue":"x"}}', ""),  # items first: not read ahead
    (b'{"kind":"Status","code":410}', ""),
    (b'{"metadata":{"continue":"cut', ""),
    (b'{"metadata":{"continue":7}}', ""),
])
def test_head_continue(body: bytes, token: str) -> None:
    """The token read ahead from the head of a list page; "" whenever it is not plainly there (the
    full decode then decides, as before)."""
    assert watch._head_continue(body) == token
