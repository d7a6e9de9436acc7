"""`pycoredns -conf FILE -validate`: the Corefile, its imports and every plugin's setup, nothing started.

A bad file exits 1 with exactly what a failed start prints; a good one exits 0 having bound nothing
and contacted no API server or upstream (checked on sockets the test holds on loopback).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


# Outside a cluster the kubernetes plugin's setup needs these (as CoreDNS's does): what an operator sets
# to validate the cluster Corefile on a workstation. Port 1 is closed: nothing would answer anyway.
IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1",
              "KUBE_DNS_SERVICE_HOST": "10.240.16.10"}
NO_EXTRA = "No files matching import glob pattern: /etc/coredns-extra/Corefile*\n"  # a warning, as CoreDNS


def pycoredns(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pycoredns", *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd, env={**os.environ, **IN_CLUSTER})


def _extra_configs(tmp_path: Path, operator_file: str) -> Path:
    """The cluster-dns example Corefile importing an operator file (the extra-configs layout)."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "Corefile").write_text(operator_file)
    main = (REPO / "examples/cluster-dns/Corefile").read_text().replace("/etc/coredns-extra/", f"{extra}/")
    conf = tmp_path / "Corefile"
    conf.write_text(main.replace(".:53", ".:0"))
    return conf


BROKEN = {
    "unknown-directive": ".:0 {\n    whoami\n    foo\n}\n",
    "syntax": ".:0 {\n    whoami\n",
    "cache-ttl": ".:0 {\n    cache 0\n}\n",
    "forward-no-to": ".:0 {\n    forward .\n}\n",
    "kubernetes-option": ".:0 {\n    kubernetes cluster.local {\n        colour red\n    }\n}\n",
    "health-lameduck": ".:0 {\n    health :0 {\n        lameduck soon\n    }\n}\n",
    "unknown-in-import": ".:0 {\n    import {dir}/part\n}\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_fails_validation_as_it_fails_a_start(tmp_path: Path, name: str) -> None:
    (tmp_path / "part").write_text("whoami\nnosuchplugin\n")
    conf = tmp_path / "Corefile"
    conf.write_text(BROKEN[name].replace("{dir}", str(tmp_path)))
    start, check = pycoredns("-conf", str(conf)), pycoredns("-conf", str(conf), "-validate")
    assert start.returncode == 1 and start.stderr.strip()
    assert (check.returncode, check.stderr, check.stdout) == (1, start.stderr, "")


def test_redeclared_common_in_extra_configs(tmp_path: Path) -> None:
    conf = _extra_configs(tmp_path, "# mine\n(common) {\n    errors\n}\n")
    start, check = pycoredns("-conf", str(conf)), pycoredns("-conf", str(conf), "-validate")
    assert start.returncode == check.returncode == 1
    assert check.stderr == start.stderr
    assert "Corefile:2 - Error during parsing: redeclaration of previously declared snippet common" in check.stderr


def test_extra_configs_argument_error_names_the_operator_file(tmp_path: Path) -> None:
    conf = _extra_configs(tmp_path, "example.com:0 {\n    import common\n    forward\n}\n")
    start, check = pycoredns("-conf", str(conf)), pycoredns("--conf", str(conf), "--validate")
    assert (check.returncode, check.stderr) == (1, start.stderr)
    assert str(tmp_path / "extra" / "Corefile") in check.stderr


@pytest.mark.parametrize(("example", "flags", "checked"), [
    ("examples/cluster-dns/Corefile", ["-conf"], None),
    ("examples/Corefile", ["-conf"], None),
    # node-local-dns: the template is filled in as a start does, checked as the file it would write
    ("examples/node-local-dns/Corefile", ["-localip", "169.254.20.10,10.240.16.10", "-basecorefile"],
     "/etc/Corefile"),
])
def test_examples_are_valid(example: str, flags: list[str], checked: str | None) -> None:
    r = pycoredns(*flags, str(REPO / example), "-validate")
    assert r.returncode == 0 and r.stderr in ("", NO_EXTRA)
    assert r.stdout == f"{checked or REPO / example}: valid\n"


def test_validate_binds_nothing_and_contacts_nothing(tmp_path: Path) -> None:
    """Every port of the file is held by the test: a start fails on them, validation never tries; the
    API server and upstream sockets have nothing waiting after validation exited."""
    held: list[socket.socket] = []

    def hold(kind: int) -> int:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            s.listen(8)
        s.setblocking(False)
        held.append(s)
        return s.getsockname()[1]

    try:
        for _attempt in range(50):  # a UDP port whose TCP twin is free too (other tests hold ports)
            dns_port = hold(socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            try:
                tcp.bind(("127.0.0.1", dns_port))
                break
            except OSError:
                continue
        else:
            pytest.fail("no UDP port with a free TCP twin in 50 tries")
        api, upstream, health = hold(socket.SOCK_STREAM), hold(socket.SOCK_DGRAM), hold(socket.SOCK_STREAM)
        api_socket, upstream_socket = held[-3], held[-2]
        conf = tmp_path / "Corefile"
        conf.write_text(
            f".:{dns_port} {{\n    bind 127.0.0.1\n    health 127.0.0.1:{health}\n"
            f"    kubernetes cluster.local {{\n        endpoint http://127.0.0.1:{api}\n    }}\n"
            f"    forward . 127.0.0.1:{upstream} {{\n        health_check 0.1s\n    }}\n    cache 30\n}}\n")
        check = pycoredns("-conf", str(conf), "-validate")
        assert (check.returncode, check.stderr) == (0, "")
        with pytest.raises(BlockingIOError):
            api_socket.accept()  # no connection was made to the API server
        with pytest.raises(BlockingIOError):
            upstream_socket.recvfrom(512)  # no health check or query reached the upstream
        plain = tmp_path / "Corefile.plain"  # the ports really are taken: a start fails on them
        plain.write_text(f".:{dns_port} {{\n    bind 127.0.0.1\n    whoami\n}}\n")
        start = pycoredns("-conf", str(plain))
        assert start.returncode == 1 and "address already in use" in start.stderr.lower()
    finally:
        for s in held:
            s.close()


def test_validate_reads_stdin(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pycoredns", "-conf", "stdin", "-validate"], input=".:0 {\n foo\n}\n",
                       capture_output=True, text=True, timeout=60, env={**os.environ})
    assert (r.returncode, r.stderr) == (1, "stdin:2 - Error during parsing: Unknown directive 'foo'\n")


EVERY_PLUGIN = """example.net:0 {{
    file {dir}/zone.db {{
        reload 1s
    }}
    transfer {{
        to 127.0.0.1:1
    }}
}}
.:0 {{
    bind 127.0.0.1
    debug
    errors
    log
    health 127.0.0.1:1 {{
        lameduck 1s
    }}
    ready 127.0.0.1:2
    prometheus 127.0.0.1:3
    reload 2s
    nsid me
    bufsize 1232
    timeouts {{
        read 5s
    }}
    metadata
    local
    header {{
        response set ra
    }}
    acl {{
        block type HINFO
    }}
    any
    chaos pycoredns me
    loop
    autopath @kubernetes
    minimal
    template IN TXT t.example {{
        answer "{{{{ .Name }}}} 60 IN TXT ok"
    }}
    hosts {dir}/hosts {{
        fallthrough
    }}
    rewrite name exact alias.example.org a.example.org
    dns64 64:ff9b::/96
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {dir}/kubeconfig
        pods verified
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
    forward . 127.0.0.1:1 127.0.0.2:1 {{
        health_check 0.1s
        max_fails 1
    }}
    whoami
}}
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (bash .ci/install)")
def test_validate_makes_no_network_call_for_any_plugin(tmp_path: Path) -> None:
    """Every plugin with a setup that would reach out (kubernetes, forward health checks, transfer
    NOTIFY, file reload, loop's probe, reload's poller, health/ready/prometheus listeners): validation
    makes no bind, listen, connect or send on an IP socket and starts no program (strace)."""
    (tmp_path / "hosts").write_text("10.0.0.1 h.example\n")
    (tmp_path / "zone.db").write_text("$ORIGIN example.net.\n@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 3600\n"
                                      "@ 3600 IN NS ns\nns 3600 IN A 10.0.0.2\n")
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n")
    conf = tmp_path / "Corefile"
    conf.write_text(EVERY_PLUGIN.format(dir=tmp_path))
    trace = tmp_path / "trace"
    r = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                        "trace=bind,listen,connect,sendto,sendmsg,sendmmsg,execve",
                        sys.executable, "-m", "pycoredns", "-conf", str(conf), "-validate"],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    syscall = re.compile(r"\b(bind|listen|connect|send\w*|execve)\(")
    calls = [line for line in trace.read_text().splitlines() if syscall.search(line)]
    programs = [c.split('execve("', 1)[1].split('"', 1)[0] for c in calls if "execve(" in c]
    # the interpreter, and at most trio's one-time `ldconfig -p` (ctypes finds libpthread to name threads)
    assert programs[0] == sys.executable and set(programs[1:]) <= {"/sbin/ldconfig"}, programs
    assert not [c for c in calls if "AF_INET" in c or "sin_port" in c or "sin6_port" in c], calls
