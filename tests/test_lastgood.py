"""Last known good configuration (`-lastgood PATH`, beyond CoreDNS): store, fall back, recover."""

from __future__ import annotations

import json
import os
import socket

import dns.message
import dns.query
import pytest
from conftest import free_port, http_get, query
from pycoredns.plugins import reload as reload_plugin
from reload_helpers import Prober, probing, serve_file, txt, write

from pycoredns.instance import StartupError
from pycoredns.lastgood import Snapshot
from pycoredns.metrics import REGISTRY


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def gauge(name: str) -> dict[tuple[str, ...], float]:
    return dict(REGISTRY.metrics[name].values)


def corefile(extra: str, version: str, ready_port: int | None = None) -> str:
    ready = f" ready 127.0.0.1:{ready_port}\n prometheus 127.0.0.1:{ready_port + 1}\n" if ready_port else ""
    return (f"(common) {{\n errors\n reload 2s 0\n}}\n"
            f".:0 {{\n import common\n chaos {version}\n{ready}}}\n"
            f"import {extra}/Corefile*\n")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _version(port: int) -> str:
    r = await query(port, "version.bind", "TXT", rdclass="CH")
    return r.answer[0][0].to_text()


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    status, _ctype, body = await http_get(port, path)
    return status, body


@pytest.fixture
def layout(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    return str(tmp_path / "Corefile"), str(extra), str(tmp_path / "state" / "lastgood.json")


async def test_snapshot_holds_main_and_imported_files(layout):
    main, extra, store = layout
    os.makedirs(os.path.dirname(store))
    write(main, corefile(extra, "v1"))
    write(f"{extra}/Corefile", "example.com:0 {\n import common\n whoami\n}\n")
    async with serve_file(main, lastgood=store) as srv:
        doc = json.loads(read(store))
        assert doc["format"] == "pycoredns-lastgood/1"
        assert doc["filename"] == main and doc["text"] == corefile(extra, "v1")
        assert doc["files"] == {f"{extra}/Corefile": "example.com:0 {\n import common\n whoami\n}\n"}
        assert doc["sha512"] == srv.instance.fingerprint
        assert gauge("pycoredns_lastgood_active") == {(): 0}
        assert gauge("pycoredns_lastgood_info") == {(srv.instance.fingerprint,): 1}
        # a reload to a new good configuration replaces the snapshot; a failed one does not
        write(main, corefile(extra, "v2"))
        assert await srv.reload()
        assert Snapshot.from_json(read(store)).text == corefile(extra, "v2")
        write(main, "nonsense {\n")
        assert not await srv.reload()
        assert Snapshot.from_json(read(store)).text == corefile(extra, "v2")
        assert [n for n in os.listdir(os.path.dirname(store))] == ["lastgood.json"]  # no temp files left


async def test_broken_start_serves_stored_then_recovers(layout, logs):
    main, extra, store = layout
    os.makedirs(os.path.dirname(store))
    ready = free_port()
    while not _free(ready + 1):
        ready = free_port()
    write(main, corefile(extra, "v1", ready))
    write(f"{extra}/Corefile", "example.com:0 {\n import common\n whoami\n}\n")
    async with serve_file(main, lastgood=store) as srv:
        good_hash = srv.instance.fingerprint
    # break both the imported file and the main file, then start again
    write(f"{extra}/Corefile", "example.com:0 {\n import common\n nonsense\n}\n")
    write(main, corefile(extra, "v2", ready))
    with pytest.raises(StartupError):  # without the flag: CoreDNS's behaviour, exit with the error
        async with serve_file(main):
            pass
    async with serve_file(main, lastgood=store) as srv:
        port = srv.port()
        assert await _version(port) == txt("v1")
        assert (await query(port, "example.com")).rcode() == 0  # the stored import, not the broken file
        assert srv.lastgood.active and srv.instance.from_lastgood
        assert srv.instance.fingerprint == good_hash
        want = f"{extra}/Corefile:3 - Error during parsing: Unknown directive 'nonsense'"
        assert logs.has(f"[ERROR] {want}: starting with last known good configuration from {store} (saved ")
        assert gauge("pycoredns_lastgood_active") == {(): 1}
        assert gauge("pycoredns_lastgood_info") == {(good_hash,): 1}
        status, body = await _http_get(ready + 1, "/metrics")
        assert b"\npycoredns_lastgood_active 1\n" in body
        assert f'\npycoredns_lastgood_info{{hash="{good_hash}"}} 1\n'.encode() in body
        status, body = await _http_get(ready, "/ready")
        assert status == 200 and body.startswith(b"OK\nrunning the last known good configuration")
        assert want.encode() in body
        poller = reload_plugin.poller(srv)
        async with probing(Prober(port)) as (p,):
            assert not await poller.tick()  # the same broken disk configuration is not retried
            write(f"{extra}/Corefile", "example.com:0 {\n import common\n nonsense again\n}\n")
            assert await poller.tick()  # changed but still broken: stays on the stored one
            assert srv.lastgood.active
            write(f"{extra}/Corefile", "example.net:0 {\n import common\n whoami\n}\n")
            assert await poller.tick()  # fixed: swap to the disk configuration
        assert p.lost == 0 and p.answers == [txt("v1"), txt("v2")], p
        assert not srv.lastgood.active and not srv.instance.from_lastgood
        assert gauge("pycoredns_lastgood_active") == {(): 0}
        assert srv.status_detail == ""
        assert (await _http_get(ready, "/ready")) == (200, b"OK")
        assert (await query(port, "example.net")).rcode() == 0
        assert Snapshot.from_json(read(store)).text == corefile(extra, "v2", ready)
        assert logs.has("[INFO] The Corefile on disk loaded: no longer running the last known good configuration")


async def test_restored_file_clears_the_flag(layout):
    """Putting back exactly the stored text is a change from the broken one: it reloads and clears."""
    main, extra, store = layout
    os.makedirs(os.path.dirname(store))
    write(main, corefile(extra, "v1"))
    async with serve_file(main, lastgood=store):
        pass
    write(main, corefile(extra, "v1") + ". {\n chaos twice\n}\n")  # duplicate zone: a setup error
    async with serve_file(main, lastgood=store) as srv:
        assert srv.lastgood.active
        write(main, corefile(extra, "v1"))
        assert await reload_plugin.poller(srv).tick()
        assert not srv.lastgood.active


async def test_missing_file_and_unusable_snapshots(layout, logs):
    main, _, store = layout
    os.makedirs(os.path.dirname(store))
    with pytest.raises(StartupError) as e:  # no Corefile, no snapshot
        async with serve_file(main, lastgood=store):
            pass
    assert str(e.value) == f"loading Caddyfile via flag: open {main}: no such file or directory"
    assert logs.has(f"[ERROR] loading Caddyfile via flag: open {main}: no such file or directory: "
                    f"no last known good configuration in {store}")
    for garbage in ("{not json", json.dumps({"format": "other"}), json.dumps({"format": "pycoredns-lastgood/1"})):
        write(store, garbage)
        with pytest.raises(StartupError) as e:
            async with serve_file(main, lastgood=store):
                pass
        assert str(e.value).startswith("loading Caddyfile via flag: open")
    assert logs.has(f"[ERROR] loading Caddyfile via flag: open {main}: no such file or directory: "
                    f"cannot read the last known good configuration {store}: ")
    # a snapshot that no longer works (its port is taken) fails with the original error
    write(main, ". {\n chaos v1\n}\n")
    async with serve_file(main, lastgood=store):
        pass
    os.unlink(main)
    snap = Snapshot.from_json(read(store))
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", port))
        snap.text = f".:{port} {{\n bind 127.0.0.1\n chaos v1\n}}\n"
        write(store, snap.to_json())
        with pytest.raises(StartupError) as e:
            async with serve_file(main, lastgood=store):
                pass
        assert str(e.value).startswith("loading Caddyfile via flag: open")
        assert logs.has("[ERROR] The last known good configuration failed too: listen: Address already in use")


async def test_unwritable_store_keeps_serving(layout, logs):
    main, _, store = layout  # the store's directory does not exist
    write(main, ". {\n chaos v1\n}\n")
    async with serve_file(main, lastgood=store) as srv:
        assert await _version(srv.port()) == txt("v1")
    assert logs.has(f"[ERROR] Could not save the last known good configuration to {store}: ")


def test_cli_flag(tmp_path, server_process):
    main, store = str(tmp_path / "Corefile"), str(tmp_path / "lastgood.json")
    port = free_port()
    write(main, f".:{port} {{\n chaos v1\n}}\n")
    srv = server_process(["-conf", main, "-lastgood", store])
    srv.wait_for_line("CoreDNS-")
    assert srv.stop() == 0
    write(main, f".:{port} {{\n chaos v2\n nonsense\n}}\n")
    srv = server_process(["-conf", main, "-lastgood", store])
    line = srv.wait_for_line("starting with last known good configuration")
    assert line.startswith(f"[ERROR] {main}:3 - Error during parsing: Unknown directive 'nonsense': ")
    srv.wait_for_line("CoreDNS-")
    r = dns.query.udp(dns.message.make_query("version.bind", "TXT", "CH"), "127.0.0.1", port=port, timeout=3)
    assert r.answer[0][0].to_text() == txt("v1")
    assert srv.stop() == 0


async def test_embed_api(tmp_path):
    from pycoredns.embed import serve

    inc, store = str(tmp_path / "zone.conf"), str(tmp_path / "lastgood.json")
    text = f".:0 {{\n import {inc}\n}}\n"
    write(inc, "chaos v1\n")
    async with serve(text, lastgood=store):
        pass
    write(inc, "nonsense\n")  # a broken import
    async with serve(text, lastgood=store) as srv:
        assert srv.lastgood.active
        assert await _version(srv.port()) == txt("v1")
