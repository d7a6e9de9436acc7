"""The first build after sync runs in the background: a query before it ends builds what it needs first
(`Index.settle`) and gets the answer the complete build gives."""

from __future__ import annotations

from plugins.kubernetes import objects
from plugins.kubernetes.index import AAAA, PTR, SRV, A, Index
from pycoredns import wire

HTTP = objects.Port("http", "tcp", 80)


def cluster(lazy: bool) -> Index:
    idx = Index(["cluster.local."], 30, reverse_zones=["in-addr.arpa."])
    idx.set_namespace("ns", True)
    for i in range(20):
        headless = i % 2 == 1
        idx.set_service(("ns", f"s{i}"), objects.Service("ns", f"s{i}", () if headless else (f"10.0.0.{i}",),
                                                         headless, "", (HTTP,), True))
        addrs = tuple(objects.Address(f"10.1.{i}.{k}", f"h{k}" if headless else "", "") for k in range(3))
        idx.set_slice(("ns", f"s{i}-a"), objects.Slice("ns", f"s{i}-a", f"s{i}", addrs, (HTTP,), None))
    if lazy:
        idx.lazy = True  # as the handler marks it once every kind has listed
    else:
        idx.apply()
    return idx


def ask(idx: Index, name: str, qtype: int) -> bytes | None:
    qname = wire.text_to_wire(name)
    idx.settle(qname)
    return idx.answers.get((qname, qtype)) or idx.on_ask((qname, qtype))


def test_settle_builds_the_asked_service_only() -> None:
    full, lazy = cluster(False), cluster(True)
    cases = [("s0.ns.svc.cluster.local.", A), ("s1.ns.svc.cluster.local.", A), ("h2.s1.ns.svc.cluster.local.", A),
             ("_http._tcp.s3.ns.svc.cluster.local.", SRV), ("s4.ns.svc.cluster.local.", SRV),
             ("_http._tcp.s4.ns.svc.cluster.local.", A), ("h0.s5.ns.svc.cluster.local.", SRV),
             ("s6.ns.svc.cluster.local.", AAAA), ("nope.ns.svc.cluster.local.", A)]
    built: set[str] = set()
    for name, qtype in cases:
        assert ask(lazy, name, qtype) == ask(full, name, qtype), name
        built.add(name.split(".")[-6])  # <name>.ns.svc.cluster.local.
        assert lazy.lazy and len(lazy.dirty) == 20 - len(built - {"nope"})  # the asked name's service only
    assert lazy.name_target(wire.text_to_wire("s8.ns.svc.cluster.local.")) is None  # not asked: not built


def test_settle_reverse_names_need_only_the_ptr_sources() -> None:
    full, lazy = cluster(False), cluster(True)
    for ip in ("10.0.0.4", "10.1.3.2", "10.1.4.0", "10.9.9.9"):  # ClusterIP, headless endpoint, endpoint, none
        assert ask(lazy, _text(ip), PTR) == ask(full, _text(ip), PTR), ip
    assert lazy.lazy and len(lazy.dirty) == 20  # no service built for them
    for name in ("cluster.local.", "ns.dns.cluster.local.", "1-2-3-4.ns.pod.cluster.local.", "ns.svc.cluster.local."):
        lazy.settle(wire.text_to_wire(name))  # nothing of the build needed
    assert lazy.lazy and len(lazy.dirty) == 20
    assert lazy.ptr_sources("10.1.3.2") == full.ptr_sources("10.1.3.2") != ()  # the apex NS reads these
    lazy.apply()  # the background build
    assert not lazy.lazy and not lazy.dirty
    assert lazy.exists == full.exists and lazy._ptr_src == full._ptr_src
    # PTR answers are built on ask (and those asked above dropped by their services' builds): the rest
    assert {k: v for k, v in lazy.answers.items() if k[1] != PTR} == {k: v for k, v in full.answers.items()
                                                                     if k[1] != PTR}


def test_apply_in_chunks_ends_the_lazy_phase() -> None:
    lazy = cluster(True)
    lazy.apply(15)
    assert lazy.lazy
    lazy.apply(15)
    assert not lazy.lazy and lazy.answers == cluster(False).answers


def _text(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa."


def test_memo_when_full_drops_its_oldest_quarter(monkeypatch) -> None:
    from plugins.kubernetes import index

    monkeypatch.setattr(index, "MEMO_SIZE", 8)
    idx = cluster(False)
    keys = [(wire.text_to_wire(f"n{i}.ns.svc.cluster.local."), A) for i in range(20)]
    for i, key in enumerate(keys):
        idx.remember(key, (3, b"negative %d" % i))
        assert len(idx.memo) <= 8
    kept = list(idx.memo)
    assert len(kept) >= 6 and kept == keys[-len(kept):]  # bounded; what was asked last is still there
    assert idx.memo[keys[19]] == (3, b"negative 19")
    idx.forget()
    assert not idx.memo
