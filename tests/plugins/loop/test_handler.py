"""loop: the self-probe, loop detection (fatal exit) and disabling."""

from __future__ import annotations

import subprocess

import dns.rcode
import pytest
import trio
from conftest import free_port, query, running


def test_forward_to_self_exits_fatally(tmp_path, server_process):
    port = free_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:{port} {{\n bind 127.0.0.1\n loop\n forward . 127.0.0.1:{port}\n}}\n")
    p = server_process(["-conf", str(corefile)])
    line = p.wait_for_line("[FATAL]", timeout=30)
    try:
        assert p.proc.wait(timeout=10) == 1
    except subprocess.TimeoutExpired:
        pytest.fail("the process logged FATAL but did not exit")
    assert sum("[FATAL]" in x for x in p.lines) == 1
    assert line.startswith("[FATAL] plugin/loop: Loop (127.0.0.1:")
    assert f" -> 127.0.0.1:{port}) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting" in line
    assert line.endswith('."') and 'Query: "HINFO ' in line


async def test_no_loop_keeps_serving_and_disables():
    async with running(". {\n loop\n whoami\n}\n") as srv:
        loop = next(h for h in srv.instance.blocks[0].handlers if h.name == "loop")
        for _ in range(100):  # bounded: the probe completes, then the plugin disables itself 2s later
            if loop.disabled:
                break
            await trio.sleep(0.1)
        assert loop.disabled
        assert loop.count == 1  # our own probe passed through once
        r = await query(srv.port(), "example.org", "HINFO")
        assert r.rcode() == dns.rcode.NOERROR and r.additional


async def test_probe_name_and_counting():
    async with running("example.org {\n loop\n whoami\n}\n") as srv:
        loop = next(h for h in srv.instance.blocks[0].handlers if h.name == "loop")
        labels = loop.qname.split(".")
        assert loop.qname.endswith(".example.org.") and labels[0].isdigit() and labels[1].isdigit()
        loop.disabled = True  # stop counting before the test queries the probe name itself
        before = loop.count
        r = await query(srv.port(), loop.qname, "HINFO")
        assert r.rcode() == dns.rcode.NOERROR
        assert loop.count == before
