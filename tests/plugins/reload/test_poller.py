"""reload's poller: what a poll reads, hashes and reloads (imports, comment-only edits, parse failures,
ConfigMap symlink swaps at the real interval)."""

from __future__ import annotations

import os

import trio
from conftest import query
from pycoredns.plugins import reload as reload_plugin
from reload_helpers import (
    Prober,
    configmap,
    failed_count,
    main_with_extras,
    probing,
    serve_file,
    txt,
    version_hashes,
    write,
)

# -- setup -------------------------------------------------------------------------------------


async def test_imported_file_change_reloads(tmp_path, logs):
    extra = tmp_path / "extra"
    extra.mkdir()
    main = str(tmp_path / "Corefile")
    write(main, main_with_extras(str(extra)))
    async with serve_file(main) as srv:
        poller = reload_plugin.poller(srv)
        first_hash = srv.instance.fingerprint
        assert version_hashes() == [first_hash]
        port = srv.port()
        assert (await query(port, "example.com")).rcode() == 2  # SERVFAIL: only chaos at the root
        async with probing(Prober(port), Prober(port, tcp=True)) as (udp, tcp):
            assert not await poller.tick()  # nothing changed
            write(str(extra / "a.conf"), "example.com:0 {\n import common\n whoami\n}\n")
            assert await poller.tick()
        assert (await query(port, "example.com")).rcode() == 0
        assert srv.port() == port  # the same (ephemeral) socket was handed over
        for p in (udp, tcp):
            assert p.lost == 0 and p.answered == p.sent, p
            assert p.answers == [txt("v1")], p
        assert srv.instance.fingerprint != first_hash
        assert version_hashes() == [srv.instance.fingerprint]
        assert "[INFO] Reloading" in logs.lines and "[INFO] Reloading complete" in logs.lines
        assert f"[INFO] plugin/reload: Running configuration SHA512 = {srv.instance.fingerprint}" in logs.lines


async def test_comment_only_edit_does_not_reload(tmp_path, logs):
    main = str(tmp_path / "Corefile")
    write(main, ". {\n reload 2s 0\n chaos v1 # the version\n}\n")
    async with serve_file(main) as srv:
        inst = srv.instance
        write(main, ". {\n reload 2s 0\n chaos v1 # another comment\n}\n# trailing comment\n")
        assert not await reload_plugin.poller(srv).tick()
        assert srv.instance is inst
        write(main, ". {\n reload 2s 0\n chaos v1\n\n}\n")  # moves no token to another line
        assert not await reload_plugin.poller(srv).tick()
        write(main, "\n. {\n reload 2s 0\n chaos v1\n}\n")  # tokens on other lines: CoreDNS reloads
        assert await reload_plugin.poller(srv).tick()
        assert srv.instance is not inst
    assert logs.lines.count("[INFO] Reloading") == 1


async def test_parse_failure_keeps_polling(tmp_path, logs):
    main = str(tmp_path / "Corefile")
    write(main, ". {\n reload 2s 0\n chaos v1\n}\n")
    async with serve_file(main) as srv:
        poller = reload_plugin.poller(srv)
        before = failed_count()
        write(main, ". {\n reload 2s 0\n chaos v2\n")  # missing }
        assert not await poller.tick()
        assert logs.has(f"[WARNING] plugin/reload: Corefile parse failed: {main}:3 - Syntax error: ")
        assert failed_count() == before
        write(main, ". {\n reload 2s 0\n chaos v2\n}\n")
        assert await poller.tick()
        r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
        assert r.answer[0][0].to_text() == txt("v2")


async def test_configmap_symlink_swap_with_real_interval(tmp_path):
    cm = str(tmp_path / "config")
    configmap(cm, {"Corefile": ". {\n reload 2s 0\n chaos v1\n}\n"})
    async with serve_file(os.path.join(cm, "Corefile")) as srv:
        poller = reload_plugin.poller(srv)
        async with probing(Prober(srv.port())) as (p,):
            configmap(cm, {"Corefile": ". {\n reload 2s 0\n chaos v2\n}\n"})
            with trio.fail_after(8):  # the poller's own 2s tick picks the swap up
                while p.answers[-1] != txt("v2"):
                    await trio.sleep(0.05)
            # removing reload: the next reload happens, then the poller stops
            configmap(cm, {"Corefile": ". {\n chaos v3\n}\n"})
            with trio.fail_after(8):
                while p.answers[-1] != txt("v3"):
                    await trio.sleep(0.05)
        assert p.lost == 0 and p.answers == [txt("v1"), txt("v2"), txt("v3")], p
        with trio.fail_after(5):
            while poller.running:
                await trio.sleep(0.05)
        assert "reload" not in srv.instance.scope.state


# -- SIGUSR1 on the real program -------------------------------------------------------------
