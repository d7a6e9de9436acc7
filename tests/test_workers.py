"""`-workers N`: several server processes on one port (SO_REUSEPORT) under a supervising parent."""

from __future__ import annotations

import os
import signal
import time

import dns.message
import dns.query
import dns.rcode
from conftest import free_port


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def udp_sockets_on(port: int) -> int:
    """How many UDP sockets are bound to 127.0.0.1:port (each worker binds its own)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return sum(1 for line in f.readlines()[1:] if line.split()[1] == want)


def wait_until(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def ask(port: int, name: str = "example.org", rdtype: str = "A", rdclass: str = "IN") -> dns.message.Message:
    """One query from a fresh socket, so every call has its own source port."""
    return dns.query.udp(dns.message.make_query(name, rdtype, rdclass), "127.0.0.1", port=port, timeout=3)


def start(server_process, tmp_path, corefile: str, *extra: str):
    conf = tmp_path / "Corefile"
    conf.write_text(corefile)
    return server_process(["-conf", str(conf), *extra])


def test_two_workers_answer_and_sigterm_stops_all(tmp_path, server_process):
    port = free_port()
    pidfile = tmp_path / "pid"
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n",
                "-workers", "2", "-pidfile", str(pidfile))
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: len(children(srv.proc.pid)) == 2 and udp_sockets_on(port) == 2)
    workers = children(srv.proc.pid)
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(srv.proc.pid))
    for _ in range(30):  # 30 source ports: with two sockets on the port both get some
        r = ask(port)
        assert r.rcode() == dns.rcode.NOERROR and r.additional
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert all(wait_until(lambda p=p: gone(p), 5) for p in workers)
    assert sum(line.startswith("CoreDNS-") for line in srv.lines + _rest(srv)) == 1  # one banner


def _rest(srv) -> list[str]:
    assert srv.proc.stdout is not None
    return srv.proc.stdout.read().decode(errors="replace").splitlines()


def test_sigusr1_reloads_every_worker(tmp_path, server_process):
    port = free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n chaos v1\n}}\n", "-workers", "2")
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: udp_sockets_on(port) == 2)
    (tmp_path / "Corefile").write_text(f".:{port} {{\n bind 127.0.0.1\n chaos v2\n}}\n")
    srv.proc.send_signal(signal.SIGUSR1)

    def all_v2() -> bool:
        return all(ask(port, "version.bind", "TXT", "CH").answer[0][0].to_text() == '"v2"' for _ in range(20))

    assert wait_until(all_v2)
    assert srv.proc.poll() is None


def test_workers_die_with_the_parent(tmp_path, server_process):
    port = free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n", "-workers", "2")
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: len(children(srv.proc.pid)) == 2)
    workers = children(srv.proc.pid)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(5)
    assert all(wait_until(lambda p=p: gone(p), 10) for p in workers)  # no orphan keeps the port


def test_a_dead_worker_takes_the_server_down(tmp_path, server_process):
    port = free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n", "-workers", "2")
    srv.wait_for_line("CoreDNS-")
    assert wait_until(lambda: len(children(srv.proc.pid)) == 2)
    first, second = children(srv.proc.pid)
    os.kill(second, signal.SIGKILL)
    assert srv.proc.wait(15) == 128 + signal.SIGKILL
    assert wait_until(lambda: gone(first), 5)


def test_broken_corefile_is_reported_once(tmp_path, server_process):
    srv = start(server_process, tmp_path, ". {\n nosuchplugin\n}\n", "-workers", "3")
    assert srv.proc.wait(30) == 1
    assert srv.proc.stderr is not None
    err = srv.proc.stderr.read().decode()
    assert err.count("nosuchplugin") == 1, err


def test_workers_flag_is_checked(tmp_path, server_process):
    srv = start(server_process, tmp_path, ". {\n whoami\n}\n", "-workers", "0")
    assert srv.proc.wait(15) == 2
    assert srv.proc.stderr is not None and b"-workers" in srv.proc.stderr.read()


def test_one_worker_is_the_single_process(tmp_path, server_process):
    port = free_port()
    srv = start(server_process, tmp_path, f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n", "-workers", "1")
    srv.wait_for_line("CoreDNS-")
    assert children(srv.proc.pid) == [] and udp_sockets_on(port) == 1
    assert ask(port).rcode() == dns.rcode.NOERROR


def test_corefile_from_stdin_reaches_every_worker(tmp_path):
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pycoredns", "-conf", "stdin", "-workers", "2", "-quiet"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(f".:{port} {{\n bind 127.0.0.1\n chaos fromstdin\n}}\n".encode())
        proc.stdin.close()
        assert wait_until(lambda: udp_sockets_on(port) == 2)
        for _ in range(20):
            assert ask(port, "version.bind", "TXT", "CH").answer[0][0].to_text() == '"fromstdin"'
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        if proc.stderr:
            proc.stderr.close()


def test_ctrl_c_on_the_process_group_is_one_graceful_sigint(tmp_path):
    import subprocess
    import sys

    port = free_port()
    conf = tmp_path / "Corefile"
    conf.write_text(f".:{port} {{\n bind 127.0.0.1\n whoami\n}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "pycoredns", "-conf", str(conf), "-workers", "2", "-quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: udp_sockets_on(port) == 2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        assert proc.wait(15) == 0  # graceful in every worker, not the "second SIGINT" exit 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
