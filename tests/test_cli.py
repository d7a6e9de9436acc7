"""The `pycoredns` command as a real process: flags, banner, errors, signals, health and ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import dns.message
import dns.query
from conftest import free_port


def run(*args: str, cwd: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pycoredns", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=30)


def dig(port: int, name: str = "example.org", rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=3)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_version():
    r = run("-version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "CoreDNS-1.14.7"
    assert lines[1].startswith("linux/")


def test_plugins_lists_dns_plugins():
    r = run("-plugins")
    assert r.returncode == 0
    assert "  dns.whoami" in r.stdout.splitlines() and "  dns.log" in r.stdout.splitlines()


def test_missing_conf_file():
    r = run("-conf", "/nonexistent/Corefile")
    assert r.returncode == 1
    assert r.stderr.strip() == "loading Caddyfile via flag: open /nonexistent/Corefile: no such file or directory"


def test_broken_corefile_exact_message_no_traceback(tmp_path):
    cf = tmp_path / "Corefile"
    cf.write_text(". {\n    whoami\n    nosuchplugin\n}\n")
    r = run("-conf", str(cf))
    assert r.returncode == 1
    assert r.stderr.strip() == f"{cf}:3 - Error during parsing: Unknown directive 'nosuchplugin'"
    assert "Traceback" not in r.stderr


def test_extra_arguments_rejected():
    r = run("whatever")
    assert r.returncode == 1
    assert "extra command line arguments: ['whatever']" in r.stderr


def test_default_corefile_serves_whoami_and_logs(tmp_path, server_process):
    port = free_port()
    p = server_process(["-dns.port", str(port)], cwd=str(tmp_path))
    assert p.wait_for_line(f".:{port}") == f".:{port}"
    p.wait_for_line("CoreDNS-1.14.7")
    r = dig(port)
    assert r.rcode() == 0 and any(rr.rdtype == 1 for rr in r.additional)
    line = p.wait_for_line('"A IN example.org. udp')
    assert line.startswith("[INFO] 127.0.0.1:") and " NOERROR qr,aa,rd " in line


def test_corefile_in_working_directory_and_pidfile(tmp_path, server_process):
    port = free_port()
    (tmp_path / "Corefile").write_text(f"example.org:{port} {{\n    whoami\n}}\n")
    pidfile = tmp_path / "pid"
    p = server_process(["-pidfile", str(pidfile)], cwd=str(tmp_path))
    p.wait_for_line(f"example.org.:{port}")
    deadline = time.monotonic() + 20
    # the file exists from the open before the pid is written into it: wait for the line (bounded)
    while not (pidfile.exists() and pidfile.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.read_text().strip() == str(p.proc.pid)
    assert dig(port, "www.example.org").rcode() == 0
    assert dig(port, "example.net").rcode() == 5  # REFUSED: no zone


def test_conf_stdin():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pycoredns", "-conf", "stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(f".:{port} {{\n    whoami\n}}\n")
        proc.stdin.close()
        assert proc.stdout.readline().strip() == f".:{port}"
        assert dig(port, tcp=True).rcode() == 0
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_health_ready_and_sigterm_lameduck(tmp_path, server_process):
    port, hport, rport = free_port(), free_port(), free_port()
    cf = tmp_path / "Corefile"
    cf.write_text(
        f".:{port} {{\n    health 127.0.0.1:{hport} {{\n        lameduck 1s\n    }}\n"
        f"    ready 127.0.0.1:{rport}\n    whoami\n}}\n")
    p = server_process(["-conf", str(cf)])
    p.wait_for_line("CoreDNS-1.14.7")
    assert http_get(f"http://127.0.0.1:{hport}/health") == (200, "OK")
    assert http_get(f"http://127.0.0.1:{rport}/ready") == (200, "OK")
    assert http_get(f"http://127.0.0.1:{hport}/nope")[0] == 404
    start = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    p.wait_for_line("Going into lameduck mode for 1s")
    # during lameduck DNS and /health keep answering, /ready is already gone
    assert dig(port).rcode() == 0
    assert http_get(f"http://127.0.0.1:{hport}/health") == (200, "OK")
    try:
        status = http_get(f"http://127.0.0.1:{rport}/ready")[0]
    except (urllib.error.URLError, ConnectionError, OSError):
        status = None
    assert status in (None, 404)
    assert p.proc.wait(10) == 0
    assert time.monotonic() - start >= 1.0


def test_health_bad_address_is_a_startup_error(tmp_path):
    cf = tmp_path / "Corefile"
    cf.write_text(".:0 {\n    health nonsense\n    whoami\n}\n")
    r = run("-conf", str(cf))
    assert r.returncode == 1
    assert r.stderr.strip() == "plugin/health: address nonsense: missing port in address"


def test_sigint_is_graceful(tmp_path, server_process):
    port = free_port()
    cf = tmp_path / "Corefile"
    cf.write_text(f".:{port} {{\n    whoami\n}}\n")
    p = server_process(["-conf", str(cf)], env={"PYTHONUNBUFFERED": "1"})
    p.wait_for_line("CoreDNS-1.14.7")
    os.kill(p.proc.pid, signal.SIGINT)
    assert p.proc.wait(10) == 0
