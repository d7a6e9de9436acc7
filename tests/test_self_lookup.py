"""Self-lookups by continuation (issue 11, item 4): kubernetes' ExternalName, template's and rewrite's
`cname` targets, dns64's A lookups, file's out-of-zone CNAME targets, k8s_external's ingress hostnames
and cache's serve_stale `verify` wait for forward without a task per query.

A small UDP upstream on loopback holds every query until the test releases it, so that N queries are
in flight at once; the test then counts the trio tasks alive (a task per waiting query was the old
way), releases the replies (in reverse order) and checks every answer with dnspython. Every wait is
bounded; nothing is timed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
import trio
from conftest import query, running, settle

from pycoredns import wire
from pycoredns.plugin import PENDING, self_lookup, self_lookup_all
from pycoredns.request import Recorder, Request

N = 200  # queries in flight at once


def address(i: int) -> str:
    return f"10.0.{i >> 8 & 255}.{i & 255}"


def reply_to(query: bytes) -> bytes:
    """`t<i>.rw.test.` A: CNAME t<i>.orig.example.; `t<i>.<anything>` A: 10.0.x.y from i; any other
    A: 192.0.2.1; anything else: NOERROR without records."""
    m = dns.message.from_wire(query)
    r = dns.message.make_response(m)
    q = m.question[0]
    name = q.name.to_text()
    first = name.split(".", 1)[0]
    if q.rdtype == 1 and name.endswith(".rw.test."):
        r.answer.append(dns.rrset.from_text(q.name, 60, "IN", "CNAME", f"{first}.orig.example."))
    elif q.rdtype == 1 and first[:1] == "t" and first[1:].isdigit():
        r.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", address(int(first[1:]))))
    elif q.rdtype == 1:
        r.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.1"))
    return r.to_wire()


class HeldUpstream:
    """UDP on a loopback port; while `held` is not None, queries wait there until `release()`."""

    def __init__(self) -> None:
        self.port = 0
        self.queries = 0
        self.held: list[tuple[bytes, tuple]] | None = None
        self.sock: trio.socket.SocketType | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hold(self) -> None:
        self.held = []

    async def release(self, again: bool = False) -> None:
        """Send the held replies, last in first out; with `again` the next queries are held too."""
        held, self.held = self.held or [], ([] if again else None)
        assert self.sock is not None
        while held:
            data, addr = held.pop()  # last in, first out: replies out of order
            await self.sock.sendto(reply_to(data), addr)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[HeldUpstream]:
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        async with trio.open_nursery() as n:
            n.start_soon(self._loop)
            try:
                yield self
            finally:
                n.cancel_scope.cancel()
        self.sock.close()

    async def _loop(self) -> None:
        assert self.sock is not None
        while True:
            data, addr = await self.sock.recvfrom(65535)
            self.queries += 1
            if self.held is not None:
                self.held.append((data, addr))
            else:
                await self.sock.sendto(reply_to(data), addr)


def tasks_alive() -> int:
    """Every task of this trio run (the root task's tree)."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


async def in_flight(port: int, names: list[str], up: HeldUpstream, waiting: int, timeout: float = 20.0,
                    qtype: str = "A", rounds: int = 1) -> dict[int, dns.message.Message]:
    """Send one `qtype` query per name at once (one UDP socket); once `waiting` upstream queries are
    held, check that no task per query exists, release them and collect every reply by index. With
    `rounds` > 1 the queries the released replies lead to are held and checked the same way."""
    out: dict[int, dns.message.Message] = {}
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    before = tasks_alive()
    with sock, trio.move_on_after(timeout):
        await sock.connect(("127.0.0.1", port))
        for i, name in enumerate(names):
            q = dns.message.make_query(name, qtype)
            q.id = i
            await sock.send(q.to_wire())
        for r in range(rounds, 0, -1):
            assert await settle(lambda: len(up.held or ()) >= waiting), (len(up.held or ()), waiting, r)
            # the old way had a task per waiting query; by continuation there is none
            assert tasks_alive() - before < 10, (tasks_alive(), before)
            await up.release(again=r > 1)
        while len(out) < len(names):
            m = dns.message.from_wire(await sock.recv(65535))
            out[m.id] = m
    assert len(out) == len(names), f"{len(names) - len(out)} queries without a reply"
    return out


def texts(m: dns.message.Message) -> list[str]:
    return [rr.to_text() for rr in m.answer]


TEMPLATE = (" template IN A alias.test {\n  match ^(t[0-9]+)[.]alias[.]test[.]$\n"
            '  answer "{{ .Name }} 60 IN CNAME {{ index .Match 1 }}.example.net."\n }\n')
REWRITE = " rewrite cname regex ^(t[0-9]+)\\.orig\\.example\\.$ {1}.example.net.\n"


@pytest.mark.parametrize(("plugin", "zone", "asked"), [(TEMPLATE, "alias.test", 1), (REWRITE, "rw.test", 2)])
async def test_cname_targets_resolve_by_continuation(plugin: str, zone: str, asked: int) -> None:
    """template answers with a CNAME and looks its target up; rewrite's `cname` rule renames the CNAME
    target the upstream gave (t<i>.orig.example.) and looks the new one up. Only the first upstream
    round is held; the lookups of the targets are answered at once."""
    up = HeldUpstream()
    async with up.serve(), running(f". {{\n{plugin} forward . {up.addr}\n}}\n") as srv:
        up.hold()
        names = [f"t{i}.{zone}." for i in range(N)]
        out = await in_flight(srv.port(), names, up, N)
        for i, name in enumerate(names):
            assert out[i].rcode() == dns.rcode.NOERROR
            assert texts(out[i]) == [f"{name} 60 IN CNAME t{i}.example.net.",
                                     f"t{i}.example.net. 60 IN A {address(i)}"]
        assert up.queries >= asked * N  # more only if a held query outlived forward's read timeout


async def test_dns64_waits_for_the_chain_and_the_a_lookup_by_continuation() -> None:
    """dns64 over forward: each AAAA query waits at the upstream (NODATA: no AAAA), then its A lookup
    through the server waits there too; both rounds are held with no task per query, released out of
    order, and every reply carries the A record mapped into 64:ff9b::/96 (TTL min(60, 600))."""
    up = HeldUpstream()
    async with up.serve(), running(f". {{\n dns64 {{\n  allow_ipv4\n }}\n forward . {up.addr}\n}}\n") as srv:
        up.hold()
        names = [f"t{i}.example.net." for i in range(N)]
        out = await in_flight(srv.port(), names, up, N, qtype="AAAA", rounds=2)
        prefix = ipaddress.IPv6Address("64:ff9b::").packed[:12]
        for i, name in enumerate(names):
            assert out[i].rcode() == dns.rcode.NOERROR and not out[i].flags & dns.flags.AA
            v6 = ipaddress.IPv6Address(prefix + ipaddress.IPv4Address(address(i)).packed)
            assert texts(out[i]) == [f"{name} 60 IN AAAA {v6}"]
        assert up.queries >= 2 * N  # more only if a held query outlived forward's read timeout


async def test_file_out_of_zone_cname_targets_resolve_by_continuation(tmp_path: Path) -> None:
    """file's CNAME to a name outside the zone (CoreDNS's externalLookup): the target is looked up
    through the server (forward, held) with no task per query; the zone's answer carries its records."""
    records = "".join(f"t{i} 60 IN CNAME t{i}.example.net.\n" for i in range(N))
    (tmp_path / "db").write_text(f"$ORIGIN file.test.\n@ 300 IN SOA ns admin 1 2 3 4 5\n@ 300 IN NS ns\n"
                                 f"ns 300 IN A 192.0.2.53\n{records}")
    up = HeldUpstream()
    async with up.serve(), running(f"file.test {{\n file {tmp_path / 'db'}\n}}\n"
                                   f". {{\n forward . {up.addr}\n}}\n") as srv:
        up.hold()
        names = [f"t{i}.file.test." for i in range(N)]
        out = await in_flight(srv.port(), names, up, N)
        for i, name in enumerate(names):
            assert out[i].rcode() == dns.rcode.NOERROR and out[i].flags & dns.flags.AA
            assert texts(out[i]) == [f"{name} 60 IN CNAME t{i}.example.net.",
                                     f"t{i}.example.net. 60 IN A {address(i)}"]
            assert [r.to_text() for r in out[i].authority] == [
                "file.test. 300 IN NS ns.file.test."]
        assert up.queries >= N  # more only if a held query outlived forward's read timeout


def kubernetes(kc: Path) -> str:
    """The kubernetes directive over the fixture cluster (pycoredns_conformance.apiserver)."""
    return f" kubernetes cluster.local {{\n  kubeconfig {kc}\n  startup_timeout 30s\n }}\n"


async def test_kubernetes_externalname_resolves_by_continuation(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kc")
    up = HeldUpstream()
    async with up.serve(), running(f". {{\n{kubernetes(kc)} forward . {up.addr}\n}}\n") as srv:
        up.hold()
        names = ["ext.ns1.svc.cluster.local."] * N
        out = await in_flight(srv.port(), names, up, N)
        for m in out.values():
            assert m.rcode() == dns.rcode.NOERROR
            assert texts(m) == ["ext.ns1.svc.cluster.local. 5 IN CNAME example.net.",
                                "example.net. 60 IN A 192.0.2.1"]


@pytest.mark.parametrize("qtype", ["A", "SRV"])
async def test_k8s_external_ingress_hostnames_resolve_by_continuation(api, tmp_path: Path, qtype: str) -> None:
    """k8s_external's LoadBalancer ingress hostname (lb.example.com, outside its zone): A answers the
    CNAME and the target's A records; SRV puts the target's A and AAAA into the additional section.
    Every lookup waits at the held upstream with no task per query."""
    kc = api.write_kubeconfig(tmp_path / "kc")
    up = HeldUpstream()
    async with up.serve():
        cf = f"example.org {{\n k8s_external example.org\n{kubernetes(kc)}}}\n. {{\n forward . {up.addr}\n}}\n"
        async with running(cf) as srv:
            up.hold()
            # SRV asks A and AAAA per query: N // 2 of them keep N lookups held, as in the other tests
            # (more, under load, outlast forward's 5 s budget before the release: SERVFAIL lookups)
            names = ["lb.ns1.example.org."] * (N if qtype == "A" else N // 2)
            out = await in_flight(srv.port(), names, up, N, qtype=qtype)
            for m in out.values():
                assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
                if qtype == "A":
                    assert texts(m) == ["lb.ns1.example.org. 5 IN A 192.0.2.10",
                                        "lb.ns1.example.org. 5 IN CNAME lb.example.com.",
                                        "lb.example.com. 60 IN A 192.0.2.1"]
                else:
                    assert lines(m.answer) == ["lb.ns1.example.org. 5 IN SRV 0 50 80 lb.example.com.",
                                               "lb.ns1.example.org. 5 IN SRV 0 50 80 lb.ns1.example.org."]
                    assert [r.to_text() for r in m.additional] == ["lb.ns1.example.org. 5 IN A 192.0.2.10",
                                                                   "lb.example.com. 60 IN A 192.0.2.1"]


async def test_cache_serve_stale_verify_refreshes_by_continuation() -> None:
    up = HeldUpstream()
    async with up.serve():
        cf = f". {{\n cache 1 {{\n  serve_stale 1h verify\n }}\n forward . {up.addr}\n}}\n"
        async with running(cf) as srv:
            names = [f"t{i}.example.net." for i in range(N)]
            out = await in_flight(srv.port(), names, up, 0)  # fills the cache (TTL 1 s)
            await trio.sleep(1.2)  # every entry is stale now
            up.hold()
            out = await in_flight(srv.port(), names, up, N)  # verify: each asks upstream first
            for i, name in enumerate(names):
                assert texts(out[i]) == [f"{name} 1 IN A {address(i)}"]  # the fresh answer
            assert up.queries >= 2 * N  # more only if a held query outlived forward's read timeout


async def test_cache_verify_timeout_answers_stale_and_the_late_refresh_updates() -> None:
    """VERIFY_TIMEOUT is a timer: the stale entry goes out while the refresh waits at the upstream (no
    task); the refresh completes later by continuation and the next query is a fresh hit."""
    up = HeldUpstream()
    async with up.serve():
        cf = f". {{\n cache 1 {{\n  serve_stale 1h verify 200ms\n }}\n forward . {up.addr}\n}}\n"
        async with running(cf) as srv:
            names = [f"t{i}.example.net." for i in range(N)]
            await in_flight(srv.port(), names, up, 0)
            await trio.sleep(1.2)  # every entry is stale now
            up.hold()
            out: dict[int, dns.message.Message] = {}
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            before = tasks_alive()
            with sock, trio.move_on_after(20):
                await sock.connect(("127.0.0.1", srv.port()))
                for i, name in enumerate(names):
                    q = dns.message.make_query(name, "A")
                    q.id = i
                    await sock.send(q.to_wire())
                while len(out) < N:  # the stale answers, at the deadline, with the refreshes held
                    m = dns.message.from_wire(await sock.recv(65535))
                    out[m.id] = m
            assert len(out) == N
            assert all(texts(out[i]) == [f"{name} 0 IN A {address(i)}"] for i, name in enumerate(names))
            assert len(up.held or ()) >= N and tasks_alive() - before < 10
            asked = up.queries
            await up.release()  # the refreshes complete now and store fresh entries
            (fwd,) = [h for b in srv.instance.blocks for h in b.handlers if h.name == "forward"]
            assert await settle(lambda: fwd.pending() == 0)  # every reply reached its continuation
            for i in (0, N // 2, N - 1):
                m = await query(srv.port(), names[i], "A")
                assert texts(m) == [f"{names[i]} 1 IN A {address(i)}"]  # fresh, from the cache
            assert up.queries == asked


# -- the helper itself, through a running server's listener ----------------------------------------


async def test_self_lookup_completes_at_once_or_later() -> None:
    """`self_lookup` returns `then`'s rcode when the chain answers synchronously, PENDING when it
    waits (then `then`'s outcome completes the writer); `self_lookup_all` keeps the order."""
    up = HeldUpstream()
    async with up.serve():
        cf = (". {\n template IN A local.test {\n  answer \"{{ .Name }} 5 IN A 192.0.2.7\"\n }\n"
              f" forward . {up.addr}\n}}\n")
        async with running(cf) as srv:
            (listener,) = [lst for lst in srv.instance.listeners.values() if lst.transport == "dns"][:1]
            req = Request(dns.message.make_query("x.test.", "A").to_wire(), listener=listener)
            finished: list[tuple[int, BaseException | None]] = []
            w = Recorder(lambda r: finished.append((r.rcode, r.error)))

            def then(reply: wire.Reply | None) -> int:
                assert reply is not None
                w.write(reply)
                return wire.NOERROR

            assert self_lookup(req.copy_with(qname="a.local.test."), w, then) == wire.NOERROR  # at once
            assert not finished and dns.message.from_wire(w.reply).answer
            w = Recorder(lambda r: finished.append((r.rcode, r.error)))
            up.hold()
            got: list[list[str]] = []

            def then_all(replies: list[wire.Reply | None]) -> int:
                got.append([texts(dns.message.from_wire(wire.to_bytes(r)))[0] for r in replies if r])
                raise wire.WireError("broken")  # a failing continuation completes the writer as SERVFAIL

            subs = [req.copy_with(qname="t1.example.net."), req.copy_with(qname="b.local.test."),
                    req.copy_with(qname="t2.example.net.")]
            assert self_lookup_all(subs, w, then_all) is PENDING
            assert await settle(lambda: len(up.held or ()) == 2)
            await up.release()
            assert await settle(lambda: bool(finished))
            assert got == [["t1.example.net. 60 IN A 10.0.0.1", "b.local.test. 5 IN A 192.0.2.7",
                            "t2.example.net. 60 IN A 10.0.0.2"]]
            assert finished[0][0] == wire.SERVFAIL and isinstance(finished[0][1], wire.WireError)


async def test_self_lookup_loops_end_at_the_reentry_limit() -> None:
    """Nested self-lookups carry their depth (`copy_with`): the 11th gets SERVFAIL, none loops."""
    cf = ". {\n template IN A loop.test {\n  answer \"{{ .Name }} 5 IN CNAME {{ .Name }}\"\n }\n}\n"
    async with running(cf) as srv:
        (listener,) = [lst for lst in srv.instance.listeners.values() if lst.transport == "dns"][:1]
        req = Request(dns.message.make_query("a.loop.test.", "A").to_wire(), listener=listener)
        rec = Recorder()

        def then(reply: wire.Reply | None) -> int:
            assert reply is not None
            rec.write(reply)
            return wire.NOERROR

        assert self_lookup(req, rec, then) == wire.NOERROR and req.depth == 1
        m = dns.message.from_wire(rec.reply)
        # a CNAME to itself: each level appends the next level's answers, the 11th is SERVFAIL (none)
        assert len(m.answer) == 1 and len(m.answer[0]) == 1



def test_uncompressed_records_can_be_spliced_into_another_message() -> None:
    """`pycoredns.layout.uncompressed`: records with every compressible name written out, valid in a
    message with another question and in another order (what template splices after a CNAME)."""
    import struct

    from pycoredns.layout import uncompressed

    r = dns.message.make_response(dns.message.make_query("a.example.org.", "A"))
    r.answer.append(dns.rrset.from_text("a.example.org.", 60, "IN", "CNAME", "b.example.org."))
    r.answer.append(dns.rrset.from_text("b.example.org.", 60, "IN", "A", "192.0.2.1", "192.0.2.2"))
    r.answer.append(dns.rrset.from_text("b.example.org.", 60, "IN", "MX", "10 mail.example.org."))
    r.answer.append(dns.rrset.from_text("_s._tcp.example.org.", 60, "IN", "SRV", "1 2 53 ns.example.org."))
    r.authority.append(dns.rrset.from_text("example.org.", 60, "IN", "SOA",
                                           "ns.example.org. host.example.org. 1 2 3 4 5"))
    data = r.to_wire()
    records = uncompressed(data)
    assert len(records) == 6 and len(b"".join(records)) > len(data) - 12  # names written out
    question = wire.text_to_wire("other.test.") + b"\x00\x01\x00\x01"
    moved = records[4::-1] + records[5:]  # the answers reversed, behind another question
    m = dns.message.from_wire(struct.pack(">HHHHHH", 1, 0x8180, 1, 5, 1, 0) + question + b"".join(moved))
    assert lines(m.answer) == lines(r.answer)
    assert lines(m.authority) == lines(r.authority)


def lines(section: list) -> list[str]:
    return sorted(line for rrset in section for line in rrset.to_text().splitlines())


# -- DEVELOPERS.md's example ------------------------------------------------------------------------


def developers_example() -> type:
    """The `Alias` plugin of DEVELOPERS.md ("Self-lookups"), executed from the document itself."""
    text = (Path(__file__).resolve().parent.parent / "DEVELOPERS.md").read_text()
    start = text.index("class Alias(WaitingHandler)")
    code = text[text.rindex("```python", 0, start) + len("```python") : text.index("```", start)]
    scope: dict = {}
    exec(compile(code, "DEVELOPERS.md", "exec"), scope)
    return scope["Alias"]


@pytest.mark.parametrize("held", [False, True])
async def test_developers_example_alias(held: bool) -> None:
    up = HeldUpstream()
    async with up.serve(), running(f". {{\n forward . {up.addr}\n}}\n") as srv:
        (block,) = srv.instance.blocks
        alias = developers_example()()
        alias.next, block.chain = block.chain, alias  # the example at the head of the chain
        if held:
            up.hold()
            names = ["alias.test."] * 20
            out = await in_flight(srv.port(), names, up, 20)
        else:
            out = {0: await query(srv.port(), "alias.test.", "A")}
        for m in out.values():
            assert m.rcode() == dns.rcode.NOERROR
            assert texts(m) == ["alias.test. 60 IN CNAME www.example.org.", "www.example.org. 60 IN A 192.0.2.1"]
        assert (await query(srv.port(), "t7.other.test.", "A")).answer[0][0].address == address(7)
