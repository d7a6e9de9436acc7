"""The upstream the conformance suite controls: a real unbound on 127.0.0.1 answering from local-data.

Cases in the `cache-forward` area stop and restart it between queries (`stop_upstream`, `start_upstream`)
and it is the `forward` target of every Corefile the suite writes, so ExternalName targets and reverse
misses that fall through get known answers. unbound never sends a packet off the machine: the root is a
`refuse` local zone, the only outgoing interface is 127.0.0.1, and the only module is the iterator.

The same `Unbound` serves the project's own tests (tests/upstream.py adds their zones and test-only
servers), so there is one implementation of starting, probing and restarting unbound.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable

import trio

UNBOUND = "/usr/sbin/unbound"


def txt_strings(n_strings: int, size: int, ch: str) -> str:
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
        f"medium.example.org. 60 IN TXT {txt_strings(3, 250, 'm')}",
        f"big.example.org. 60 IN TXT {txt_strings(4, 250, 'b')}",
        f"big.example.org. 60 IN TXT {txt_strings(4, 250, 'c')}",
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


def free_port(kind: int = socket.SOCK_DGRAM, both: bool = True) -> int:
    """A port on 127.0.0.1 free right now (for UDP and TCP when `both`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if not both:
                return port
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, other) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def probe_query(name: str = "example.org.", qtype: int = 6, qid: int = 0x4242) -> bytes:
    """A minimal wire query (no EDNS) for readiness checks."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def make_tls_cert(directory: str, names: Iterable[str] = ("dns.example.test",)) -> tuple[str, str]:
    """A self-signed certificate (also its own CA) for `names` and 127.0.0.1; returns (cert_path, key_path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = list(names)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class SyncAsync:
    """Mixin: `start()`/`stop()` become both a sync and a trio async context manager."""

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self):
        return await trio.to_thread.run_sync(self.start)

    async def __aexit__(self, *exc) -> None:
        await trio.to_thread.run_sync(self.stop)


class Unbound(SyncAsync):
    """A real unbound on 127.0.0.1 serving `zones` from local-data; `port` (UDP+TCP), `tls_port` with `tls=True`,
    `https_port` (DNS over HTTPS, HTTP/2, path /dns-query) with `https=True`.

    `zones` maps a zone apex to RR lines; a zone without an SOA line gets one (so negative answers carry
    it). `zone_type` is the local-zone type (static: NXDOMAIN/NODATA for unknown names). `root` is the
    local-zone type for "." (refuse: names outside the zones are REFUSED; static: NXDOMAIN).
    `extra` is appended verbatim to the server: clause; `ipv6=True` also listens on [::1] (same port).
    """

    def __init__(self, zones: dict[str, list[str]] | None = None, *, port: int = 0, tls: bool = False,
                 https: bool = False, tls_names: Iterable[str] = ("dns.example.test",), zone_type: str = "static",
                 root: str = "refuse", extra: str = "", ready_timeout: float = 10.0, ipv6: bool = False) -> None:
        if not os.path.exists(UNBOUND):
            raise RuntimeError(f"{UNBOUND} not installed (apt-get install unbound)")
        self.zones = MAIN_ZONES if zones is None else zones
        self.port = port
        self.tls = tls
        self.tls_port = 0
        self.https = https  # unbound is built with nghttp2 on Debian: DoH on `https_port`
        self.https_port = 0
        self.tls_names = list(tls_names)
        self.zone_type = zone_type
        self.root = root
        self.extra = extra
        self.ready_timeout = ready_timeout
        self.ipv6 = ipv6  # also listen on [::1] (same port)
        self.dir = tempfile.mkdtemp(prefix="unbound-test-")
        self.cert_file = self.key_file = ""
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        """`127.0.0.1:PORT` for a Corefile."""
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        """The unbound.conf text for the current ports."""
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            *([f"  interface: ::1@{self.port}"] if self.ipv6 else []),
            "  do-ip4: yes", f"  do-ip6: {'yes' if self.ipv6 else 'no'}", "  do-udp: yes", "  do-tcp: yes",
            "  do-daemonize: no", '  chroot: ""', '  username: ""', f'  directory: "{self.dir}"',
            '  pidfile: ""', '  logfile: ""', "  use-syslog: no", "  verbosity: 0", "  log-time-ascii: yes",
            "  num-threads: 1", "  so-reuseport: no",
            "  access-control: 127.0.0.0/8 allow", "  access-control: ::1 allow",
            '  module-config: "iterator"', "  do-not-query-localhost: no",
            "  outgoing-interface: 127.0.0.1", "  rrset-roundrobin: no", "  minimal-responses: no",
            "  edns-buffer-size: 1232", "  max-udp-size: 1232", "  msg-buffer-size: 65552",
            "  incoming-num-tcp: 64", "  tcp-idle-timeout: 30000",
            f'  local-zone: "." {self.root}',
        ]
        if self.tls:
            lines += [f"  interface: 127.0.0.1@{self.tls_port}", f"  tls-port: {self.tls_port}",
                      f'  tls-service-key: "{self.key_file}"', f'  tls-service-pem: "{self.cert_file}"']
        if self.https:
            lines += [f"  interface: 127.0.0.1@{self.https_port}", f"  https-port: {self.https_port}"]
            if not self.tls:
                lines += [f'  tls-service-key: "{self.key_file}"', f'  tls-service-pem: "{self.cert_file}"']
        for zone, rrs in self.zones.items():
            lines.append(f'  local-zone: "{zone}" {self.zone_type}')
            if not any(_is_soa(zone, rr) for rr in rrs):
                lines.append(f"  local-data: '{zone} 3600 IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 60'")
            for rr in rrs:
                lines.append(f"  local-data: '{rr}'")
        if self.extra:
            lines.append(self.extra)
        lines += ["remote-control:", "  control-enable: no"]
        return "\n".join(lines) + "\n"

    def start(self) -> Unbound:
        """Start (on the same port(s) when restarting) and wait until it answers over UDP and TCP."""
        if self.proc is not None:
            return self
        if (self.tls or self.https) and not self.cert_file:
            self.cert_file, self.key_file = make_tls_cert(self.dir, self.tls_names)
        fixed = bool(self.port)
        last = ""
        for _ in range(5):
            if not fixed:
                self.port = free_port()
            if self.tls and not self.tls_port:
                self.tls_port = free_port(socket.SOCK_STREAM, both=False)
            if self.https and not self.https_port:
                self.https_port = free_port(socket.SOCK_STREAM, both=False)
            conf = os.path.join(self.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(self.config())
            # stderr goes to a file: a pipe nobody reads fills up (64 KiB) with unbound's log lines (one per
            # TLS handshake a client abandons, for instance) and unbound then blocks for good on a write
            with open(self._err_path(), "w") as err:
                self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=err)
            if self._wait_ready():
                return self
            last = self._kill()
            if fixed:
                # The old socket may linger a moment after a restart: retry the same port.
                time.sleep(0.2)
        raise RuntimeError(f"unbound did not start on 127.0.0.1:{self.port}: {last}")

    def _wait_ready(self) -> bool:
        """Bounded wait until UDP and TCP (and the DoT and DoH TCP ports) answer."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            if (self._answers_udp() and self._answers_tcp() and (not self.tls or self._connects(self.tls_port))
                    and (not self.https or self._connects(self.https_port))):
                return True
            time.sleep(0.02)
        return False

    def _answers_udp(self) -> bool:
        zone = next(iter(self.zones), ".")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(probe_query(zone), ("127.0.0.1", self.port))
                return len(s.recv(4096)) >= 12
            except OSError:
                return False

    def _answers_tcp(self) -> bool:
        zone = next(iter(self.zones), ".")
        q = probe_query(zone)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(struct.pack("!H", len(q)) + q)
                return len(s.recv(4096)) >= 14
        except OSError:
            return False

    @staticmethod
    def _connects(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _err_path(self) -> str:
        return os.path.join(self.dir, "unbound.err")

    def _kill(self) -> str:
        """Kill the process now; returns (the end of) its stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        try:
            with open(self._err_path(), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill unbound (SIGKILL: a dead upstream is what tests want); the ports stay reserved for restart()."""
        self._kill()

    def restart(self) -> Unbound:
        """Stop and start again on the same port(s)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def __aexit__(self, *exc) -> None:
        await trio.to_thread.run_sync(self.__exit__)

    def close(self) -> None:
        """Stop and remove the working directory."""
        self.__exit__()


def _is_soa(zone: str, rr: str) -> bool:
    parts = rr.split()
    return len(parts) >= 4 and parts[0].lower() == zone.lower() and "SOA" in (p.upper() for p in parts[1:4])
