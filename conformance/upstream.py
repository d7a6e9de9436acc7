"""The upstream the conformance suite controls: a real unbound on 127.0.0.1 answering from local-data.

Cases in the `cache-forward` area stop and restart it between queries (`stop_upstream`, `start_upstream`)
and it is the `forward` target of every Corefile the suite writes, so ExternalName targets and reverse
misses that fall through get known answers. unbound never sends a packet off the machine: the root is a
`refuse` local zone, the only outgoing interface is 127.0.0.1, and the only module is the iterator.

(The generic parts of tests/upstream.py, restated without trio so the suite does not import from tests/.)
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

UNBOUND = "/usr/sbin/unbound"


def _txt(n_strings: int, size: int, ch: str) -> str:
    return " ".join('"' + (ch * size) + '"' for _ in range(n_strings))


#: The zones of the main upstream. Names the cases use: a (A ttl 300), a6 (A + AAAA), short (A ttl 5),
#: ttl3 (A ttl 3), long (A ttl 86400), www (CNAME -> a), nodata (A only), many (20 A), mx (MX),
#: medium (TXT ~800 bytes), big (TXT ~2000 bytes); example.net. apex has A + AAAA (the ExternalName
#: target of the fixture cluster). 10.in-addr.arpa. is empty (reverse misses are NXDOMAIN with its SOA)
#: and 2.0.192.in-addr.arpa. has one PTR.
MAIN_ZONES: dict[str, list[str]] = {
    "example.org.": [
        "example.org. 3600 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 30",
        "example.org. 3600 IN NS ns.example.org.",
        "ns.example.org. 3600 IN A 192.0.2.53",
        "a.example.org. 300 IN A 192.0.2.1",
        "a6.example.org. 300 IN A 192.0.2.6",
        "a6.example.org. 300 IN AAAA 2001:db8::6",
        "short.example.org. 5 IN A 192.0.2.5",
        "ttl3.example.org. 3 IN A 192.0.2.3",
        "long.example.org. 86400 IN A 192.0.2.86",
        "www.example.org. 120 IN CNAME a.example.org.",
        "nodata.example.org. 300 IN A 192.0.2.7",
        *[f"many.example.org. 60 IN A 192.0.2.{i}" for i in range(100, 120)],
        "mx.example.org. 300 IN MX 10 mail.example.org.",
        "mail.example.org. 300 IN A 192.0.2.25",
        f"medium.example.org. 60 IN TXT {_txt(3, 250, 'm')}",
        f"big.example.org. 60 IN TXT {_txt(4, 250, 'b')}",
        f"big.example.org. 60 IN TXT {_txt(4, 250, 'c')}",
        *[f"s{i}.example.org. 300 IN A 192.0.2.{200 + i}" for i in range(10)],
    ],
    "example.net.": [
        "example.net. 3600 IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 60",
        "example.net. 300 IN A 198.51.100.10",
        "example.net. 300 IN AAAA 2001:db8:100::10",
        "a.example.net. 300 IN A 198.51.100.1",
    ],
    "10.in-addr.arpa.": [
        "10.in-addr.arpa. 3600 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60",
    ],
    "2.0.192.in-addr.arpa.": [
        "2.0.192.in-addr.arpa. 3600 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60",
        "1.2.0.192.in-addr.arpa. 300 IN PTR a.example.org.",
    ],
}

#: The second upstream (failover and `next` cases): zones the main one refuses.
SECOND_ZONES: dict[str, list[str]] = {
    "example.com.": [
        "example.com. 3600 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60",
        "b.example.com. 300 IN A 203.0.113.2",
    ],
    "example.info.": [
        "example.info. 3600 IN SOA ns.example.info. hostmaster.example.info. 1 3600 600 86400 60",
        "c.example.info. 300 IN A 203.0.113.3",
    ],
}


def free_port() -> int:
    """A port on 127.0.0.1 free for both UDP and TCP right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def probe_query(name: str, qtype: int = 6, qid: int = 0x4242) -> bytes:
    """A minimal wire query without EDNS (readiness checks need no DNS library)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def answers_udp(port: int, name: str = ".", timeout: float = 0.2) -> bool:
    """Does something on 127.0.0.1:port answer a DNS query over UDP?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(probe_query(name), ("127.0.0.1", port))
            return len(s.recv(4096)) >= 12
        except OSError:
            return False


def answers_tcp(port: int, name: str = ".", timeout: float = 0.5) -> bool:
    """Does something on 127.0.0.1:port answer a DNS query over TCP?"""
    q = probe_query(name)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            return len(s.recv(4096)) >= 14
    except OSError:
        return False


class Unbound:
    """unbound in the foreground on 127.0.0.1:`port` (UDP+TCP), serving `zones` as static local zones.

    `stop()` kills it (a dead upstream is what the cases want) and keeps the port, so `start()` comes
    back on the same address the Corefile names.
    """

    def __init__(self, zones: dict[str, list[str]] | None = None, ready_timeout: float = 10.0) -> None:
        if not os.path.exists(UNBOUND):
            raise RuntimeError(f"{UNBOUND} not installed (apt-get install unbound)")
        self.zones = MAIN_ZONES if zones is None else zones
        self.port = 0
        self.ready_timeout = ready_timeout
        self.dir = tempfile.mkdtemp(prefix="conformance-unbound-")
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        """`127.0.0.1:PORT`, as a Corefile names it."""
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        """unbound.conf for the current port."""
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}", f"  port: {self.port}",
            "  do-ip4: yes", "  do-ip6: no", "  do-udp: yes", "  do-tcp: yes",
            "  do-daemonize: no", '  chroot: ""', '  username: ""', f'  directory: "{self.dir}"',
            '  pidfile: ""', '  logfile: ""', "  use-syslog: no", "  verbosity: 0",
            "  num-threads: 1", "  so-reuseport: no",
            "  access-control: 127.0.0.0/8 allow",
            '  module-config: "iterator"', "  do-not-query-localhost: no",
            "  outgoing-interface: 127.0.0.1", "  rrset-roundrobin: no", "  minimal-responses: no",
            "  edns-buffer-size: 1232", "  max-udp-size: 1232", "  msg-buffer-size: 65552",
            '  local-zone: "." refuse',
        ]
        for zone, rrs in self.zones.items():
            lines.append(f'  local-zone: "{zone}" static')
            lines += [f"  local-data: '{rr}'" for rr in rrs]
        lines += ["remote-control:", "  control-enable: no"]
        return "\n".join(lines) + "\n"

    def start(self) -> Unbound:
        """Start (on the same port when restarting) and wait, bounded, until UDP and TCP answer."""
        if self.running:
            return self
        fixed = bool(self.port)
        last = ""
        for _ in range(5):
            if not fixed:
                self.port = free_port()
            conf = os.path.join(self.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(self.config())
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + self.ready_timeout
            zone = next(iter(self.zones), ".")
            while time.monotonic() < deadline and self.proc.poll() is None:
                if answers_udp(self.port, zone) and answers_tcp(self.port, zone):
                    return self
                time.sleep(0.02)
            last = self._kill()
            if fixed:
                time.sleep(0.2)  # the old socket may linger a moment after a restart
        raise RuntimeError(f"unbound did not start on 127.0.0.1:{self.port}: {last}")

    def _kill(self) -> str:
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.kill()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            err = ""
        return err or ""

    def stop(self) -> None:
        """SIGKILL; the port stays this upstream's for `start()`."""
        self._kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Unbound:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
