"""Node-cache networking mode inside a network namespace the test creates (root and iproute2 needed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"),
    reason="needs root, iproute2 and iptables to create a network namespace")

LOCAL_IP = "169.254.20.10"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns():
    name = f"pcd-{uuid.uuid4().hex[:8]}"
    r = sh("ip", "netns", "add", name, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    yield name
    sh("ip", "netns", "del", name, check=False)


def in_ns(ns: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, check=check)


def rules(ns: str) -> str:
    return in_ns(ns, "iptables-save").stdout


def wait_until(fn, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return False


def wait_line(p: subprocess.Popen, text: str, timeout: float = 15.0) -> bool:
    """Read the child's stdout (raw fd, bounded) until a line contains `text`."""
    import select

    fd = p.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        if text.encode() in buf:
            return True
    return False


def start(ns: str, tmp_path, *extra: str) -> subprocess.Popen:
    cf = tmp_path / "Corefile"
    cf.write_text(f".:53 {{\n    bind {LOCAL_IP}\n    whoami\n}}\n")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "pycoredns", "-conf", str(cf), "-localip", LOCAL_IP,
         "-basecorefile", str(tmp_path / "none"), "-health-port", "8080", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_interface_rules_answers_and_teardown(netns, tmp_path):
    p = start(netns, tmp_path, "-syncinterval", "1")
    try:
        assert wait_until(lambda: rules(netns).count("NodeLocal DNS") == 12), p.stderr  # 8 NOTRACK + 4 ACCEPT
        saved = rules(netns)
        assert f"-A PREROUTING -d {LOCAL_IP}/32 -p udp -m udp --dport 53 " in saved
        assert f"-A INPUT -d {LOCAL_IP}/32 -p tcp -m tcp --dport 53 " in saved
        assert f"-A OUTPUT -s {LOCAL_IP}/32 -p tcp -m tcp --sport 8080 " in saved
        assert f" {LOCAL_IP}/32 " in in_ns(netns, "ip", "-o", "addr").stdout
        dig = in_ns(netns, "dig", f"@{LOCAL_IP}", "example.org", "+short", "+tries=1", "+time=2")
        assert dig.returncode == 0
        # a rule deleted behind our back is put back within the sync interval
        in_ns(netns, "iptables", "-w", "-t", "filter", "-D", "INPUT", "-p", "udp", "-d", LOCAL_IP, "--dport", "53",
              "-j", "ACCEPT", "-m", "comment", "--comment", "NodeLocal DNS Cache: allow DNS traffic", check=True)
        assert wait_until(lambda: rules(netns).count("allow DNS traffic") == 4, timeout=5)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    assert "Added back nodelocaldns rule" in out
    assert "NodeLocal DNS" not in rules(netns)  # no rule left pointing at a dead listener
    assert f" {LOCAL_IP}/" not in in_ns(netns, "ip", "-o", "addr").stdout


def test_surge_upgrade_keeps_networking_for_the_new_instance(netns, tmp_path):
    old = start(netns, tmp_path)
    new = None
    try:
        assert wait_until(lambda: "NodeLocal DNS Cache: skip conntrack" in rules(netns))
        (tmp_path / "new").mkdir()
        new = start(netns, tmp_path / "new")  # binds the same address with SO_REUSEPORT
        assert wait_line(new, "CoreDNS-")
        old.send_signal(signal.SIGTERM)
        out, _ = old.communicate(timeout=15)
        assert "another instance is serving" in out
        assert "NodeLocal DNS" in rules(netns)
        dig = in_ns(netns, "dig", f"@{LOCAL_IP}", "example.org", "+tries=1", "+time=2")
        assert "status: NOERROR" in dig.stdout
    finally:
        for p in (old, new):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=15)
    assert "NodeLocal DNS" not in rules(netns)  # the last one out cleans up


def test_broken_corefile_installs_no_rules(netns, tmp_path):
    cf = tmp_path / "Corefile"
    cf.write_text(".:53 {\n    nosuchplugin\n}\n")
    r = sh("ip", "netns", "exec", netns, sys.executable, "-m", "pycoredns", "-conf", str(cf), "-localip", LOCAL_IP,
           "-basecorefile", str(tmp_path / "none"), check=False)
    assert r.returncode == 1
    assert "Unknown directive 'nosuchplugin'" in r.stderr
    assert "NodeLocal DNS" not in rules(netns)
    assert f" {LOCAL_IP}/" not in in_ns(netns, "ip", "-o", "addr").stdout


def test_base_corefile_is_rendered(netns, tmp_path):
    base = tmp_path / "Corefile.base"
    base.write_text(".:53 {\n    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__\n"
                    "    forward . __PILLAR__CLUSTER__DNS__ {\n        force_tcp\n    }\n}\n")
    out = tmp_path / "Corefile"
    env = {**os.environ, "KUBE_DNS_UPSTREAM_SERVICE_HOST": "127.0.0.53"}
    p = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pycoredns", "-localip", LOCAL_IP, "-basecorefile",
         str(base), "-corefile", str(out), "-upstreamsvc", "kube-dns-upstream", "-setupiptables=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert wait_until(out.exists)
        text = out.read_text()
        assert f"bind {LOCAL_IP} \n" in text and "forward . 127.0.0.53 {" in text
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=15)


def test_bad_localip():
    r = sh(sys.executable, "-m", "pycoredns", "-localip", "169.254.20.10,fd00::1", check=False)
    assert r.returncode == 1
    assert "expected IPs from the same family" in r.stderr
