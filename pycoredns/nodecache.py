"""Node-local cache networking: what k8s-dns-node-cache does around CoreDNS, in the same program.

With `-localip`, pycoredns (like node-cache) puts the link-local listen address(es) on a dummy interface,
installs iptables NOTRACK/ACCEPT rules for them once the DNS servers are up, re-ensures both every
`-syncinterval` seconds, and removes both on exit, so no rule is left pointing at a dead listener.

Differences from node-cache, on purpose:
- when the kernel has no `dummy` link type, the addresses go on `lo` (labelled `lo:<interfacename>`)
  instead of failing; teardown removes them the same way;
- rules are added only after every listener is bound and the banner printed (node-cache polls for the
  pidfile); a configuration that fails to start therefore never installs rules;
- the Corefile template variables are filled from `-basecorefile` as node-cache does, but kube-dns
  `stubDomains`/`upstreamNameservers` from `-kubednscm` are not read.
Uses the iproute2 `ip` and `iptables`/`ip6tables` commands (as node-cache's iptables wrapper does).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
from dataclasses import dataclass, field

import trio

from . import log, metrics

logger = log.plugin_logger("nodecache")

setup_errors = metrics.REGISTRY.counter(
    "coredns_nodecache_setup_errors_total", "The number of errors during periodic network setup for node-cache",
    ("errortype",))

NOTRACK_COMMENT = "NodeLocal DNS Cache: skip conntrack"
ACCEPT_COMMENT = "NodeLocal DNS Cache: allow DNS traffic"


@dataclass
class NodeCacheConfig:
    local_ips: list[str]
    interface: str = "nodelocaldns"
    setup_interface: bool = True
    setup_iptables: bool = True
    port: int = 53
    health_port: int = 8080
    sync_interval: float = 60.0
    skip_teardown: bool = False
    use_lo: bool = field(default=False, init=False)

    @property
    def ipv6(self) -> bool:
        return ":" in self.local_ips[0]


def parse_local_ips(text: str) -> list[str]:
    """`-localip` value: comma list of IPs of one family. Raises ValueError with node-cache-like text."""
    ips = [x.strip() for x in text.split(",") if x.strip()]
    if not ips:
        raise ValueError("invalid localip specified")
    families = set()
    for ip in ips:
        try:
            families.add(ipaddress.ip_address(ip).version)
        except ValueError:
            raise ValueError(f"Invalid localip specified - {ip!r}") from None
    if len(families) > 1:
        raise ValueError(f"Invalid localip specified - {text!r}, expected IPs from the same family")
    return ips


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


class NodeCache:
    """Interface and iptables management for one set of local IPs."""

    def __init__(self, cfg: NodeCacheConfig) -> None:
        self.cfg = cfg
        self.iptables = "ip6tables" if cfg.ipv6 else "iptables"
        self.plen = 128 if cfg.ipv6 else 32

    # -- rules ---------------------------------------------------------------------------------
    def rules(self) -> list[tuple[str, str, list[str]]]:
        """(table, chain, rule spec) for every rule node-cache installs, in its order."""
        out = []
        port, hport = str(self.cfg.port), str(self.cfg.health_port)
        for ip in self.cfg.local_ips:
            for proto in ("tcp", "udp"):
                out += [
                    ("raw", "PREROUTING", ["-p", proto, "-d", ip, "--dport", port, "-j", "NOTRACK",
                                           "-m", "comment", "--comment", NOTRACK_COMMENT]),
                    ("filter", "INPUT", ["-p", proto, "-d", ip, "--dport", port, "-j", "ACCEPT",
                                         "-m", "comment", "--comment", ACCEPT_COMMENT]),
                    ("raw", "OUTPUT", ["-p", proto, "-s", ip, "--sport", port, "-j", "NOTRACK",
                                       "-m", "comment", "--comment", NOTRACK_COMMENT]),
                    ("filter", "OUTPUT", ["-p", proto, "-s", ip, "--sport", port, "-j", "ACCEPT",
                                          "-m", "comment", "--comment", ACCEPT_COMMENT]),
                    ("raw", "OUTPUT", ["-p", proto, "-d", ip, "--dport", port, "-j", "NOTRACK",
                                       "-m", "comment", "--comment", NOTRACK_COMMENT]),
                ]
            out += [
                ("raw", "OUTPUT", ["-p", "tcp", "-d", ip, "--dport", hport, "-j", "NOTRACK",
                                   "-m", "comment", "--comment", NOTRACK_COMMENT]),
                ("raw", "OUTPUT", ["-p", "tcp", "-s", ip, "--sport", hport, "-j", "NOTRACK",
                                   "-m", "comment", "--comment", NOTRACK_COMMENT]),
            ]
        return out

    def _ipt(self, op: str, table: str, chain: str, spec: list[str]) -> subprocess.CompletedProcess[str]:
        args = [self.iptables, "-w", "-t", table, op, chain]
        if op == "-I":
            args.append("1")
        return _run(*args, *spec)

    def ensure_rules(self, initial: bool = False) -> None:
        for table, chain, spec in self.rules():
            if self._ipt("-C", table, chain, spec).returncode == 0:
                continue
            r = self._ipt("-I", table, chain, spec)
            if r.returncode != 0:
                setup_errors.inc("iptables")
                logger.error(f"Error adding iptables rule {table} {chain} {' '.join(spec)}: {r.stderr.strip()}")
            elif not initial:
                logger.info(f"Added back nodelocaldns rule - {table} {chain} {' '.join(spec)}")

    def remove_rules(self) -> None:
        for table, chain, spec in self.rules():
            for _ in range(10):  # delete every copy
                if self._ipt("-D", table, chain, spec).returncode != 0:
                    break

    # -- interface -----------------------------------------------------------------------------
    def ensure_interface(self) -> None:
        name = self.cfg.interface
        if not self.cfg.use_lo and _run("ip", "link", "show", name).returncode != 0:
            r = _run("ip", "link", "add", name, "type", "dummy")
            if r.returncode != 0:
                if "Unknown device type" in r.stderr or "not supported" in r.stderr.lower():
                    logger.warning(f"no dummy link type on this kernel; putting {self.cfg.local_ips} on lo instead")
                    self.cfg.use_lo = True
                else:
                    setup_errors.inc("interface_add")
                    raise OSError(f"Error creating dummy interface {name}: {r.stderr.strip()}")
        dev = "lo" if self.cfg.use_lo else name
        if not self.cfg.use_lo:
            _run("ip", "link", "set", name, "up")
        existing = _run("ip", "-o", "addr", "show", "dev", dev).stdout
        for ip in self.cfg.local_ips:
            if f" {ip}/" in existing:
                continue
            args = ["ip", "addr", "add", f"{ip}/{self.plen}", "dev", dev]
            if self.cfg.use_lo and not self.cfg.ipv6:
                args += ["label", f"lo:{name}"[:15]]
            r = _run(*args)
            if r.returncode != 0 and "File exists" not in r.stderr:
                setup_errors.inc("interface_add")
                raise OSError(f"Error adding {ip} to {dev}: {r.stderr.strip()}")

    def remove_interface(self) -> None:
        if self.cfg.use_lo:
            for ip in self.cfg.local_ips:
                _run("ip", "addr", "del", f"{ip}/{self.plen}", "dev", "lo")
        else:
            _run("ip", "link", "del", self.cfg.interface)

    # -- lifecycle -----------------------------------------------------------------------------
    def setup_before_start(self) -> None:
        """Before the DNS servers start (so `bind` to the local IPs works)."""
        if self.cfg.setup_interface:
            self.ensure_interface()

    def other_instance_serving(self) -> bool:
        """Whether another server answers on our address now that our sockets are closed.

        A DaemonSet rolled out with maxSurge runs the new pod beside the old one (both bind with
        SO_REUSEPORT); the old pod must then leave the address and rules in place.
        """
        ip = self.cfg.local_ips[0]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        query = struct.pack(">HHHHHH", 0x5EED, 0x0100, 1, 0, 0, 0) + b"\x00\x00\x06\x00\x01"  # . SOA
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            try:
                s.sendto(query, (ip, self.cfg.port))
                data = s.recv(512)
            except OSError:
                return False
        return len(data) >= 12 and data[:2] == b"\x5e\xed"

    def teardown(self) -> None:
        if self.cfg.skip_teardown:
            return
        if self.other_instance_serving():
            logger.info(f"another instance is serving {self.cfg.local_ips[0]}:{self.cfg.port}; "
                        "leaving the interface and rules in place")
            return
        if self.cfg.setup_iptables:
            self.remove_rules()
        if self.cfg.setup_interface:
            self.remove_interface()
        logger.info("Tearing down")

    async def watch_base(self, base: str, out: str, local_ips: list[str], upstream_svc: str) -> None:
        """Re-render the Corefile when the base file (a mounted ConfigMap) changes; `reload` picks it up."""
        last = _stat(base)
        while True:
            await trio.sleep(10)
            now = _stat(base)
            if now != last and now is not None:
                last = now
                try:
                    render_base_corefile(base, out, local_ips, upstream_svc)
                except OSError as e:
                    setup_errors.inc("configmap")
                    logger.error(f"Failed to update Corefile: {e}")

    async def run(self, started: trio.Event) -> None:
        """Add rules once the servers are up, then re-ensure interface and rules periodically."""
        await started.wait()
        if self.cfg.setup_iptables:
            await trio.to_thread.run_sync(self.ensure_rules, True)
        while True:
            await trio.sleep(self.cfg.sync_interval)
            try:
                if self.cfg.setup_interface:
                    await trio.to_thread.run_sync(self.ensure_interface)
                if self.cfg.setup_iptables:
                    await trio.to_thread.run_sync(self.ensure_rules)
            except OSError as e:
                logger.error(str(e))


def render_base_corefile(base: str, out: str, local_ips: list[str], upstream_svc: str) -> None:
    """Fill node-cache's `__PILLAR__` variables in the base Corefile and write the result to `out`."""
    text = fill_base_corefile(base, local_ips, upstream_svc)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o666)
    os.replace(tmp, out)
    logger.info(f"Updated Corefile with following contents:\n{text}")


def fill_base_corefile(base: str, local_ips: list[str], upstream_svc: str) -> str:
    """The base Corefile with node-cache's `__PILLAR__` variables filled in (also what -validate checks)."""
    with open(base, encoding="utf-8") as f:
        text = f.read()
    env_name = upstream_svc.upper().replace("-", "_") + "_SERVICE_HOST"
    cluster_dns = os.environ.get(env_name, "")
    text = text.replace("__PILLAR__CLUSTER__DNS__", cluster_dns)
    text = text.replace("__PILLAR__UPSTREAM__SERVERS__", "/etc/resolv.conf")
    text = text.replace("__PILLAR__LOCAL__DNS__", local_ips[0])  # normally filled in at install time
    return text.replace("__PILLAR__DNS__SERVER__", "")  # node-cache blanks it when still present


def _stat(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime, st.st_size
