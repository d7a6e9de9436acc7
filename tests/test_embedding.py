"""Library use: the embed example, and a third-party plugin found through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_embed_example_runs():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "embed_server.py")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "serving example.org on 127.0.0.1:" in r.stdout
    assert "status: NOERROR" in r.stdout and "flags: qr aa" in r.stdout


def _install_entry_point(tmp_path: Path) -> dict:
    """Register the example plugin the way an installed wheel would: a dist-info with entry_points.txt."""
    dist = tmp_path / "pycoredns_hello-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pycoredns-hello\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[pycoredns.plugins]\nhello = pycoredns_hello\n")
    path = os.pathsep.join([str(tmp_path), str(ROOT / "examples" / "plugin_example")])
    return {**os.environ, "PYTHONPATH": path}


def test_third_party_plugin_via_entry_point(tmp_path, server_process):
    env = _install_entry_point(tmp_path)
    listed = subprocess.run([sys.executable, "-m", "pycoredns", "-plugins"], capture_output=True, text=True,
                            env=env, timeout=30)
    assert "  dns.hello" in listed.stdout.splitlines()
    port = free_port()
    cf = tmp_path / "Corefile"
    cf.write_text(f"example.org:{port} {{\n    hello {{\n        text hi there\n    }}\n    whoami\n}}\n")
    p = server_process(["-conf", str(cf)], env={"PYTHONPATH": env["PYTHONPATH"]})
    p.wait_for_line(f"example.org.:{port}")
    r = dns.query.udp(dns.message.make_query("a.example.org", "TXT"), "127.0.0.1", port=port, timeout=3)
    assert [rr.to_text() for rr in r.answer[0]] == ['"hi there"']
    r = dns.query.udp(dns.message.make_query("a.example.org", "A"), "127.0.0.1", port=port, timeout=3)
    assert r.additional  # passed on to whoami


def test_third_party_plugin_setup_errors_are_prefixed(tmp_path):
    env = _install_entry_point(tmp_path)
    cf = tmp_path / "Corefile"
    cf.write_text(".:0 {\n    hello {\n        colour red\n    }\n}\n")
    r = subprocess.run([sys.executable, "-m", "pycoredns", "-conf", str(cf)], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == f"plugin/hello: {cf}:3 - Error during parsing: unknown property 'colour'"


def test_demo_serves_the_fixture_cluster(server_process):
    """The README's first command: API test server + cluster DNS + whoami on one port."""
    port = free_port()
    p = server_process(["-dns.port", str(port)], module="pycoredns.demo")
    p.wait_for_line("CoreDNS-1.14.7", timeout=60)
    r = dns.query.udp(dns.message.make_query("kube-dns.kube-system.svc.cluster.local", "A"), "127.0.0.1",
                      port=port, timeout=3)
    assert [rr.to_text() for rr in r.answer[0]] == ["10.240.16.10"]
    r = dns.query.udp(dns.message.make_query("example.org", "A"), "127.0.0.1", port=port, timeout=3)
    assert r.additional



def test_entry_points_are_scanned_only_for_a_name_not_built_in(tmp_path):
    """A Corefile of built-in directives loads without scanning the installed distributions; one naming the
    entry point's directive (or an unknown one) scans them and gets the plugin (or the usual error)."""
    env = _install_entry_point(tmp_path)
    code = """
import sys
from pycoredns import cli, directives
rc = cli.main(["-validate", "-conf", sys.argv[1]])
print(rc, directives.entry_points_loaded())
"""
    cases = {"builtin": (".:0 {\n    whoami\n}\n", "0 False"),
             "hello": (".:0 {\n    hello\n    whoami\n}\n", "0 True"),
             "unknown": (".:0 {\n    nosuch\n}\n", "1 True")}
    for name, (text, want) in cases.items():
        cf = tmp_path / f"Corefile.{name}"
        cf.write_text(text)
        r = subprocess.run([sys.executable, "-c", code, str(cf)], capture_output=True, text=True, env=env, timeout=30)
        assert r.stdout.strip().splitlines()[-1] == want, (name, r.stdout, r.stderr)
    assert "Unknown directive 'nosuch'" in r.stderr
