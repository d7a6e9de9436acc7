"""reload plugin and graceful, lossless configuration swaps (issue 5).

Most reloads are triggered deterministically: `poller.tick()` is exactly one poll of the reload
plugin, `process.reload()` is what SIGUSR1 does. One test waits for the real 2s interval.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import dns.message
import dns.query
import dns.rrset
import trio
from conftest import free_port, http_get, query
from pycoredns.plugins import reload as reload_plugin
from reload_helpers import (
    Prober,
    failed_count,
    main_with_extras,
    probing,
    serve_file,
    txt,
    version_hashes,
    write,
)

# -- setup -------------------------------------------------------------------------------------


async def test_broken_config_keeps_old_serving(tmp_path, logs):
    extra = tmp_path / "extra"
    extra.mkdir()
    main = str(tmp_path / "Corefile")
    write(main, main_with_extras(str(extra)))
    async with serve_file(main) as srv:
        poller = reload_plugin.poller(srv)
        inst = srv.instance
        before = failed_count()
        async with probing(Prober(srv.port())) as (p,):
            write(str(extra / "bad.conf"), "example.com:0 {\n import common\n nonsense\n}\n")
            assert await poller.tick()
            assert not await poller.tick()  # the same broken file is not retried
        assert p.lost == 0 and p.answers == [txt("v1")], p
        assert srv.instance is inst
        assert failed_count() == before + 1
        want = f"{extra}/bad.conf:3 - Error during parsing: Unknown directive 'nonsense'"
        assert f"[ERROR] Restart failed: {want}" in logs.lines
        assert f"[ERROR] plugin/reload: Corefile changed but reload failed: {want}" in logs.lines
        assert version_hashes() == [poller.hash] != [inst.fingerprint]  # CoreDNS shows the new hash
        # a setup error (not a parse error) fails the same way
        write(str(extra / "bad.conf"), "example.com:0 {\n reload 1s\n}\n")
        assert await poller.tick()
        assert srv.instance is inst and failed_count() == before + 2
        os.unlink(extra / "bad.conf")
        write(main, main_with_extras(str(extra), "v2"))
        assert await poller.tick()
        r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
        assert r.answer[0][0].to_text() == txt("v2")


async def test_busy_port_fails_cleanly(tmp_path, logs):
    main = str(tmp_path / "Corefile")
    dns_port, http_port = free_port(), free_port()
    write(main, f".:{dns_port} {{\n reload 2s 0\n chaos v1\n}}\n")
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEPORT: our bind must fail
    busy.bind(("127.0.0.1", 0))
    busy_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy_tcp.bind(("127.0.0.1", 0))
    busy_tcp.listen(1)
    try:
        async with serve_file(main) as srv:
            inst = srv.instance
            async with probing(Prober(dns_port)) as (p,):
                write(main, f".:{dns_port} {{\n reload 2s 0\n chaos v2\n}}\n"
                            f".:{busy.getsockname()[1]} {{\n bind 127.0.0.1\n chaos v2\n}}\n")
                assert not await srv.reload()
                write(main, f".:{dns_port} {{\n reload 2s 0\n chaos v2\n"
                            f" health 127.0.0.1:{busy_tcp.getsockname()[1]}\n}}\n")
                assert not await srv.reload()
            assert p.lost == 0 and p.answers == [txt("v1")], p
            assert srv.instance is inst
            assert "[ERROR] Restart failed: listen: Address already in use" in logs.lines
            hp = busy_tcp.getsockname()[1]
            assert f"[ERROR] Restart failed: listen tcp 127.0.0.1:{hp}: Address already in use" in logs.lines
            assert set(srv.sockets.socks) == {("", dns_port)}  # what the failed attempts bound is closed
            write(main, f".:{dns_port} {{\n reload 2s 0\n chaos v3\n health 127.0.0.1:{http_port}\n}}\n")
            assert await srv.reload()
            r = await query(dns_port, "version.bind", "TXT", rdclass="CH")
            assert r.answer[0][0].to_text() == txt("v3")
    finally:
        busy.close()
        busy_tcp.close()


async def test_port_change(tmp_path):
    main = str(tmp_path / "Corefile")
    a, b, c = free_port(), free_port(), free_port()
    write(main, f".:{a} {{\n chaos v1\n}}\n.:{b} {{\n bind 127.0.0.1\n chaos v1\n}}\n")
    async with serve_file(main) as srv:
        async with probing(Prober(a), Prober(b, tcp=True)) as (pa, pb):
            write(main, f".:{a} {{\n chaos v2\n}}\n.:{c} {{\n bind 127.0.0.1\n chaos v2\n}}\n")
            pb.stop.set()  # port b goes away with this reload; stop probing it first
            assert await srv.reload()
            r = await query(c, "version.bind", "TXT", rdclass="CH")
            assert r.answer[0][0].to_text() == txt("v2")
        assert pa.lost == 0 and pa.answers == [txt("v1"), txt("v2")], pa
        assert pb.lost == 0, pb
        # the socket of the dropped port is closed once the old configuration has drained
        with trio.fail_after(10):
            while ("127.0.0.1", b) in srv.sockets.socks:
                await trio.sleep(0.02)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", b))  # free again
        s.close()


async def test_http_servers_survive(tmp_path):
    main = str(tmp_path / "Corefile")
    hp = free_port()
    write(main, f". {{\n chaos v1\n health 127.0.0.1:{hp}\n}}\n")
    async with serve_file(main) as srv:
        server = srv.http[f"127.0.0.1:{hp}"]
        write(main, f". {{\n chaos v2\n health 127.0.0.1:{hp}\n}}\n")
        assert await srv.reload()
        assert srv.http[f"127.0.0.1:{hp}"] is server  # not closed and re-bound
        status, body = await _http_get(hp, "/health")
        assert (status, body) == (200, b"OK")


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    status, _ctype, body = await http_get(port, path)
    return status, body


async def test_many_reloads_in_a_row(tmp_path):
    main = str(tmp_path / "Corefile")
    write(main, ". {\n chaos v0\n}\n")
    async with serve_file(main) as srv:
        async with probing(Prober(srv.port()), Prober(srv.port(), tcp=True)) as probers:
            for i in range(1, 11):
                write(main, f". {{\n chaos v{i}\n}}\n")
                assert await srv.reload()
        for p in probers:
            assert p.lost == 0 and p.answered == p.sent, p
            assert p.answers[-1] == txt("v10"), p
        with trio.fail_after(10):  # every old configuration retires
            while srv._retiring:
                await trio.sleep(0.02)


# -- Kubernetes ConfigMap mounts and the real interval ----------------------------------------


def test_sigusr1_reloads(tmp_path, server_process):
    main = str(tmp_path / "Corefile")
    port = free_port()
    write(main, f".:{port} {{\n chaos v1\n}}\n")
    srv = server_process(["-conf", main])
    srv.wait_for_line("CoreDNS-")
    counts = {"sent": 0, "answered": 0}
    answers: list[str] = []
    stop = threading.Event()

    def probe() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            q = dns.message.make_query("version.bind", "TXT", "CH")
            counts["sent"] += 1
            try:
                r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
            except Exception:
                continue
            counts["answered"] += 1
            text = r.answer[0][0].to_text()
            if not answers or answers[-1] != text:
                answers.append(text)

    t = threading.Thread(target=probe)
    t.start()
    try:
        deadline = time.monotonic() + 10  # the probe has seen v1 before the reload (under load it may start late)
        while not answers and time.monotonic() < deadline:
            time.sleep(0.01)
        write(main, f".:{port} {{\n chaos v2\n}}\n")
        srv.proc.send_signal(signal.SIGUSR1)
        srv.wait_for_line("[INFO] Reloading complete")
        deadline = time.monotonic() + 5
        while answers[-1:] != [txt("v2")] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join(10)
    assert counts["sent"] == counts["answered"], counts
    assert answers == [txt("v1"), txt("v2")]
    write(main, f".:{port} {{\n nonsense\n}}\n")
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_for_line("[ERROR] Restart failed: ")
    r = dns.query.udp(dns.message.make_query("version.bind", "TXT", "CH"), "127.0.0.1", port=port, timeout=2)
    assert r.answer[0][0].to_text() == txt("v2")
    assert srv.stop() == 0


async def test_tcp_connections_across_a_reload(tmp_path):
    """Old connections answer what they have read, then close once idle; none waits for the 5s drain."""
    main = str(tmp_path / "Corefile")
    write(main, ". {\n chaos v1\n}\n")
    wire = dns.message.make_query("version.bind", "TXT", "CH").to_wire()
    frame = len(wire).to_bytes(2, "big") + wire

    async def answer(stream: trio.SocketStream) -> str:
        data = b""
        with trio.fail_after(5):
            while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                data += await stream.receive_some(65536)
        return dns.message.from_wire(data[2:]).answer[0][0].to_text()

    async with serve_file(main) as srv:
        idle = await trio.open_tcp_stream("127.0.0.1", srv.port())
        partial = await trio.open_tcp_stream("127.0.0.1", srv.port())
        async with idle, partial:
            await idle.send_all(frame)
            assert await answer(idle) == txt("v1")
            await partial.send_all(frame)
            assert await answer(partial) == txt("v1")
            await partial.send_all(frame[:5])  # half a query when the reload comes
            write(main, ". {\n chaos v2\n}\n")
            assert await srv.reload()
            with trio.fail_after(3):
                assert await idle.receive_some(10) == b""  # closed by the server: it was idle
            await partial.send_all(frame[5:])
            assert await answer(partial) == txt("v1")  # the old configuration read it, so it answers
            with trio.fail_after(3):
                assert await partial.receive_some(10) == b""
        with trio.fail_after(3):
            while srv._retiring:
                await trio.sleep(0.01)
        r = await query(srv.port(), "version.bind", "TXT", tcp=True, rdclass="CH")
        assert r.answer[0][0].to_text() == txt("v2")


async def test_queries_in_flight_finish(tmp_path):
    """Slow upstream answers for queries the old configuration started arrive after the swap."""
    up = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await up.bind(("127.0.0.1", 0))
    seen = trio.Event()

    async def slow_upstream() -> None:
        async def reply(data: bytes, addr) -> None:
            await trio.sleep(0.3)
            r = dns.message.make_response(dns.message.from_wire(data))
            r.answer.append(dns.rrset.from_text(r.question[0].name, 60, "IN", "A", "192.0.2.1"))
            await up.sendto(r.to_wire(), addr)

        async with trio.open_nursery() as n:
            while True:
                data, addr = await up.recvfrom(65535)
                seen.set()
                n.start_soon(reply, data, addr)

    main = str(tmp_path / "Corefile")
    text = ". {{\n chaos {}\n forward . 127.0.0.1:" + str(up.getsockname()[1]) + " {{\n  prefer_udp\n }}\n}}\n"
    write(main, text.format("v1"))
    with up:
        async with trio.open_nursery() as n:
            n.start_soon(slow_upstream)
            async with serve_file(main) as srv:
                results: list[int] = []

                async def ask(i: int) -> None:
                    r = await query(srv.port(), f"q{i}.example.org", "A", tcp=i % 2 == 1)
                    results.append((r.rcode(), len(r.answer)))

                async with trio.open_nursery() as clients:
                    for i in range(20):
                        clients.start_soon(ask, i)
                    await seen.wait()
                    write(main, text.format("v2"))
                    assert await srv.reload()  # while the old configuration waits on the upstream
                assert results == [(0, 1)] * 20
            n.cancel_scope.cancel()


async def test_reloads_adding_and_dropping_a_port(tmp_path):
    """Regression: a retiring configuration released (closed) a socket the starting one had just taken."""
    main = str(tmp_path / "Corefile")
    a, b = free_port(), free_port()
    write(main, f".:{a} {{\n chaos v0\n}}\n")
    async with serve_file(main) as srv:
        async with probing(Prober(a), Prober(a, tcp=True)) as probers:
            for i in range(1, 101):  # ends without port b
                extra = f".:{b} {{\n bind 127.0.0.1\n chaos other\n}}\n" if i % 3 == 0 else ""
                write(main, f".:{a} {{\n chaos v{i}\n}}\n{extra}")
                assert await srv.reload()
                await trio.sleep(0.001 * (i % 7))  # retirements overlap later activations at varied points
        for p in probers:
            assert p.lost == 0 and p.answered == p.sent, p
            assert p.answers[-1] == txt("v100"), p
        with trio.fail_after(10):
            while srv._retiring:
                await trio.sleep(0.02)
        assert set(srv.sockets.socks) == {("", a)}
