"""forward: proxy queries to upstream resolvers over UDP, TCP or DNS-over-TLS (CoreDNS `forward`).

    forward FROM TO... {
        except ZONES...; force_tcp; prefer_udp; expire DUR; max_fails N; health_check DUR [no_rec] [domain FQDN]
        policy random|round_robin|sequential; max_concurrent N; tls [CERT KEY [CA]] | [CA]; tls_servername NAME
        next RCODE...; failover RCODE...; failfast_all_unhealthy_upstreams; max_connect_attempts N
        read_timeout DUR; max_idle_conns N
    }

Each `forward` line is its own handler; they chain in Corefile order. The success path does no DNS
parse beyond a walk of the reply: the upstream's bytes go to the client with the client's ID.
See README.md for where this differs from CoreDNS.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import ssl

import trio

from pycoredns import metrics, wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller, Handler, PluginError, config_uint
from pycoredns.plugin import config_atoi as _atoi
from pycoredns.plugin import config_duration as _duration
from pycoredns.request import Request, ResponseWriter
from pycoredns.util import format_duration, is_subdomain, normalize_zones

from .proxy import CachedClosed, Proxy, UpstreamError

log = plugin_logger("forward")

MAX_UPSTREAMS = 15
DEADLINE = 5.0  # overall budget of one query (CoreDNS defaultTimeout)
SWEEP_INTERVAL = 10.0
DEFAULT_PORTS = {"dns": 53, "tls": 853, "grpc": 443, "https": 443, "quic": 853}
SCHEMES = ("dns", "tls", "grpc", "https", "quic", "unix")

healthcheck_broken = metrics.REGISTRY.counter(
    "coredns_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.")
max_concurrent_rejects = metrics.REGISTRY.counter(
    "coredns_forward_max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.")


# -- policies ------------------------------------------------------------------------------------


class Policy:
    """Order in which one query tries the upstreams."""

    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        return proxies


class RandomPolicy(Policy):
    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        if len(proxies) == 1:
            return proxies
        if len(proxies) == 2:
            return proxies if random.getrandbits(1) else [proxies[1], proxies[0]]
        return random.sample(proxies, len(proxies))


class RoundRobinPolicy(Policy):
    """Start one further each query; the rest keep their order (CoreDNS: p[i], p[:i], p[i+1:])."""

    def __init__(self) -> None:
        self.robin = 0

    def list(self, proxies: list[Proxy]) -> list[Proxy]:
        self.robin += 1
        i = self.robin % len(proxies)
        return [proxies[i], *proxies[:i], *proxies[i + 1 :]]


POLICIES = {"random": RandomPolicy, "round_robin": RoundRobinPolicy, "sequential": Policy}


# -- the handler ---------------------------------------------------------------------------------


class Forward(Handler):
    name = "forward"

    def __init__(self, from_zone: str) -> None:
        self.from_zone = from_zone
        self.ignored: list[str] = []
        self.proxies: list[Proxy] = []
        self.policy: Policy = RandomPolicy()
        self.force_tcp = False
        self.prefer_udp = False
        self.max_fails = 2
        self.expire = 10.0
        self.hc_interval = 0.5
        self.hc_recursion = True
        self.hc_domain = "."
        self.read_timeout = 2.0
        self.max_concurrent = 0
        self.limit_error = ""
        self.concurrent = 0
        self.next_rcodes: list[int] = []
        self.failover_rcodes: list[int] = []
        self.failfast = False
        self.max_connect_attempts: int | None = None  # None: 2 x upstreams
        self.max_idle_conns = 0
        self.tls_context: ssl.SSLContext | None = None
        self.tls_servername = ""
        self._scope: trio.CancelScope | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Own the UDP reader and health-check tasks; sweep idle connections until shutdown."""
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    for p in self.proxies:
                        p.nursery = nursery
                    task_status.started()
                    while True:
                        await trio.sleep(SWEEP_INTERVAL)
                        for p in self.proxies:
                            p.sweep()
        finally:
            self.close()

    def close(self) -> None:
        for p in self.proxies:
            p.nursery = None
            p.close()

    async def shutdown(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
        self.close()

    # -- serving -----------------------------------------------------------------------------
    def match(self, name: str) -> bool:
        """qname inside FROM and not inside an `except` zone (FROM itself always matches)."""
        if not is_subdomain(self.from_zone, name):
            return False
        if not self.ignored or name == self.from_zone:
            return True
        return not any(is_subdomain(z, name) for z in self.ignored)

    def serve_fast(self, req: Request, w: ResponseWriter) -> int | None:
        if not self.match(req.name):
            return self.next_fast(req, w)
        return None  # forwarding always waits

    async def serve_dns(self, req: Request, w: ResponseWriter) -> int:
        if not self.match(req.name):
            return await self.next_or_failure(req, w)
        if self.max_concurrent and self.concurrent >= self.max_concurrent:
            max_concurrent_rejects.inc()
            raise PluginError(wire.REFUSED, self.limit_error)
        self.concurrent += 1
        try:
            return await self._forward(req, w)
        finally:
            self.concurrent -= 1

    def _proto(self, req: Request) -> str:
        if self.force_tcp:
            return "tcp"
        if self.prefer_udp:
            return "udp"
        return "udp" if req.proto == "udp" else "tcp"

    async def _forward(self, req: Request, w: ResponseWriter) -> int:
        proxies = self.policy.list(self.proxies)
        n = len(proxies)
        cap = 2 * n if self.max_connect_attempts is None else self.max_connect_attempts
        deadline = trio.current_time() + DEADLINE
        bufsize = req.size()
        i = fails = attempts = failovers = 0
        last_err: UpstreamError | None = None
        while (left := deadline - trio.current_time()) > 0:
            if i >= n:
                i = fails = 0
            proxy = proxies[i]
            i += 1
            if proxy.down(self.max_fails):
                fails += 1
                if fails < n:
                    continue
                healthcheck_broken.inc()
                if self.failfast:
                    break
                proxy = random.choice(self.proxies)  # health checking assumed broken
            proto = self._proto(req)
            try:
                while True:
                    try:
                        reply = await proxy.exchange(req.wire, proto, bufsize, min(self.read_timeout, left))
                    except CachedClosed:
                        left = deadline - trio.current_time()
                        if left <= 0:
                            raise UpstreamError("i/o timeout") from None
                        continue
                    if proto == "udp" and self.prefer_udp and not self.force_tcp and reply[2] & 0x02:
                        proto = "tcp"  # truncated: retry over TCP
                        left = deadline - trio.current_time()
                        continue
                    break
            except UpstreamError as e:
                last_err = e
                if self.max_fails:
                    proxy.healthcheck()
                attempts += 1
                if cap and attempts >= cap:
                    break
                continue
            if not _matches(req, reply):
                w.write(req.empty_reply(wire.FORMERR))
                return 0
            rcode = reply[3] & 0x0F
            if rcode in self.failover_rcodes and failovers < n - 1:
                failovers += 1  # not reset when the list wraps: after n replies the last one is written
                continue
            if rcode in self.next_rcodes and isinstance(self.next, Forward):
                return await self.next_or_failure(req, w)
            w.write(req.wire[:2] + reply[2:])
            return 0
        if last_err is not None:
            raise PluginError(wire.SERVFAIL, str(last_err))
        raise PluginError(wire.SERVFAIL, "no healthy proxies")


def _matches(req: Request, reply: bytes) -> bool:
    """CoreDNS request.Match: a response with one question of the same (case-insensitive) name and type."""
    if not reply[2] & 0x80 or reply[4:6] != b"\x00\x01":
        return False
    try:
        qname, qtype, _qclass, _end = wire.parse_question(reply)
    except wire.WireError:
        return False
    return qtype == req.qtype and qname == req.qname_wire


# -- setup ---------------------------------------------------------------------------------------


def setup(c: Controller) -> None:
    forwards = [parse_stanza(c) for _ in c.occurrences()]
    for f in forwards:
        if len(f.proxies) > MAX_UPSTREAMS:
            raise ConfigError(f"more than {MAX_UPSTREAMS} TOs configured: {len(f.proxies)}")
    for f in forwards:
        c.add_handler(f)
        c.on_startup(_starter(c, f))
        c.on_shutdown(f.shutdown)


def _starter(c: Controller, f: Forward):
    async def start() -> None:
        await c.start(f.run)

    return start


def parse_stanza(c: Controller) -> Forward:
    args = c.remaining_args()
    if not args:
        raise c.arg_err()
    frm, to = args[0], args[1:]
    zones = normalize_zones([frm])
    if not zones:
        raise ConfigError(f"unable to normalize '{frm}'")
    if len(zones) > 1:
        log.warning(f"Unsupported CIDR notation: '{frm}' expands to multiple zones. Using only '{zones[0]}'.")
    f = Forward(zones[0])
    if not to:
        raise c.arg_err()
    targets = parse_targets(to)
    while c.next_block():
        parse_option(c, f)
    for trans, host, port, server_name, text in targets:
        if trans not in ("dns", "tls"):
            raise ConfigError(f"'{trans}' is not supported as a destination protocol in forward: {text}")
        if trans == "tls" and server_name and f.tls_servername:
            raise ConfigError(f"both forward ('{f.tls_servername}') and proxy level ('{server_name}') TLS "
                              f"servernames are set for upstream proxy '{text}'")
        tls = None
        if trans == "tls":
            tls = f.tls_context or _tls_context([])
        p = Proxy((host, port), trans, tls, server_name or f.tls_servername or None)
        p.expire, p.read_timeout = f.expire, f.read_timeout
        p.hc_interval, p.hc_recursion, p.hc_domain = f.hc_interval, f.hc_recursion, f.hc_domain
        p.hc_tcp = f.force_tcp and trans != "tls"
        p.max_idle = f.max_idle_conns
        f.proxies.append(p)
    return f


# -- TO parsing ----------------------------------------------------------------------------------

Target = tuple[str, str, int, str, str]  # transport, host, port, TLS server name, text for errors
_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                       r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$")


def _split_scheme(text: str) -> tuple[str, str]:
    for s in SCHEMES:
        if text.startswith(s + "://"):
            return s, text[len(s) + 3 :]
    return "dns", text


def _split_server_name(rest: str) -> tuple[str, str]:
    """`9.9.9.9%dns.quad9.net:853` -> (`9.9.9.9:853`, `dns.quad9.net`) (CoreDNS splitZone)."""
    if "%" not in rest:
        return rest, ""
    i = rest.rindex("%")
    host, zone = rest[:i], rest[i + 1 :]
    if host.startswith("["):
        host += "]"
    if ":" in zone:
        j = zone.rindex(":")
        host += zone[j:]
        zone = zone[:j].rstrip("]")
    return host, zone


def _split_host_port(rest: str) -> tuple[str, str]:
    """(host, port) with port '' when absent; raises ValueError when malformed."""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in address {rest}")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError(f"address {rest}: unexpected text after ']'")
        return host, tail[1:]
    if rest.count(":") == 1:
        host, port = rest.split(":")
        return host, port
    return rest, ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def parse_targets(to: list[str]) -> list[Target]:
    """Expand TO arguments: IPs with optional ports, resolv.conf-style files, host names (resolved now)."""
    out: list[Target] = []
    for text in to:
        trans, rest = _split_scheme(text)
        if trans == "unix":
            out.append((trans, rest, 0, "", text))
            continue
        if not rest:
            raise ConfigError(f'invalid address: "{text}"')
        hostport, server_name = _split_server_name(rest)
        try:
            host, port_text = _split_host_port(hostport)
        except ValueError as e:
            raise ConfigError(f'invalid upstream address "{rest}": {e}') from None
        default = DEFAULT_PORTS.get(trans, 53)
        if port_text and not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
            raise ConfigError(f'invalid upstream address "{rest}": invalid port {port_text}')
        port = int(port_text) if port_text else default
        shown = f"{trans}://{_join(host, port)}" if trans != "dns" else _join(host, port)
        if _is_ip(host):
            out.append((trans, host.split("%", 1)[0], port, server_name, shown))
            continue
        if not port_text and trans == "dns" and os.path.isfile(rest):
            out.extend(("dns", ns, 53, "", _join(ns, 53)) for ns in read_resolv_conf(rest))
            continue
        for addr in _resolve(host, port):
            out.append((trans, addr, port, server_name, shown))
    if not out:
        raise ConfigError("no nameservers found")
    return out


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_resolv_conf(path: str) -> list[str]:
    """`nameserver` addresses of a resolv.conf-style file (zone suffixes stripped; non-IPs ignored)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise ConfigError(f'failed to open file "{path}": {e.strerror}') from None
    servers: list[str] = []
    for line in lines:
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) > 1 and fields[0] == "nameserver":
            addr = fields[1].split("%", 1)[0]
            if _is_ip(addr) and addr not in servers:
                servers.append(addr)
    return servers


def _resolve(host: str, port: int) -> list[str]:
    """A host name TO, resolved once at startup with the system resolver; addresses de-duplicated."""
    if not _HOSTNAME.match(host):
        raise ConfigError(f'not an IP address or file: "{host}"')
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as e:
        raise ConfigError(f'failed to resolve upstream host "{host}": {e}') from None
    addrs: list[str] = []
    for _fam, _type, _proto, _canon, sa in infos:
        if sa[0] not in addrs:
            addrs.append(sa[0])
    return addrs


# -- options -------------------------------------------------------------------------------------


def _uint(text: str, name: str = "ParseUint", bits: int = 32) -> int:
    return config_uint(text, name, bits)


def _rcodes(c: Controller, failover: bool) -> list[int]:
    args = c.remaining_args()
    if not args:
        raise c.arg_err()
    out = []
    for a in args:
        rc = wire.RCODE_VALUES.get(a.upper())
        if rc is None:
            raise ConfigError(f"{a} is not a valid rcode")
        if failover and rc == wire.NOERROR:
            raise ConfigError("NoError cannot be used in failover")
        out.append(rc)
    return out


def _one_arg(c: Controller) -> str:
    if not c.next_arg():
        raise c.arg_err()
    return c.val()


def _no_args(c: Controller) -> None:
    if c.next_arg():
        raise c.arg_err()


def _tls_context(args: list[str]) -> ssl.SSLContext:
    """pkg/tls NewTLSConfigFromArgs: () system CAs, (CA), (CERT KEY), (CERT KEY CA); TLS >= 1.2."""
    try:
        ca = args[0] if len(args) == 1 else args[2] if len(args) == 3 else None
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if len(args) >= 2:
            ctx.load_cert_chain(args[0], args[1])
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"could not load TLS config: {e}") from None
    return ctx


def parse_option(c: Controller, f: Forward) -> None:
    opt = c.val()
    if opt == "except":
        zones = c.remaining_args()
        if not zones:
            raise c.arg_err()
        f.ignored.extend(normalize_zones(zones))
    elif opt == "max_fails":
        f.max_fails = _uint(_one_arg(c))
    elif opt == "max_connect_attempts":
        f.max_connect_attempts = _uint(_one_arg(c))
    elif opt == "health_check":
        dur = _duration(_one_arg(c))
        if dur < 0:
            raise ConfigError(f"health_check can't be negative: {round(dur * 1e9)}")
        f.hc_interval = dur
        f.hc_domain = "."
        while c.next_arg():
            v = c.val()
            if v == "no_rec":
                f.hc_recursion = False
            elif v == "domain":
                d = _one_arg(c)
                try:
                    wire.text_to_wire(d)
                    valid = d == "." or (len(d) <= 255 and all(0 < len(x) <= 63 for x in d.rstrip(".").split(".")))
                except (UnicodeError, ValueError):
                    valid = False
                if not valid:
                    raise ConfigError(f"health_check: invalid domain name {d}")
                f.hc_domain = d.lower() if d.endswith(".") else d.lower() + "."
            else:
                raise ConfigError(f"health_check: unknown option {v}")
    elif opt == "force_tcp":
        _no_args(c)
        f.force_tcp = True
    elif opt == "prefer_udp":
        _no_args(c)
        f.prefer_udp = True
    elif opt == "tls":
        args = c.remaining_args()
        if len(args) > 3:
            raise c.arg_err()
        f.tls_context = _tls_context([c.path(a) for a in args])
    elif opt == "tls_servername":
        f.tls_servername = _one_arg(c)
    elif opt == "expire":
        dur = _duration(_one_arg(c))
        if dur < 0:
            raise ConfigError(f"expire can't be negative: -{format_duration(-dur)}")
        f.expire = dur
    elif opt == "read_timeout":
        dur = _duration(_one_arg(c))
        if dur <= 0:
            raise ConfigError(f"read_timeout must be positive: {format_duration(dur)}")
        f.read_timeout = dur
    elif opt == "max_idle_conns":
        n = _atoi(_one_arg(c))
        if n < 0:
            raise ConfigError(f"max_idle_conns can't be negative: {n}")
        f.max_idle_conns = n
    elif opt == "policy":
        name = _one_arg(c)
        if name not in POLICIES:
            raise c.errf("unknown policy '%s'", name)
        f.policy = POLICIES[name]()
    elif opt == "max_concurrent":
        text = _one_arg(c)
        n = _atoi(text)
        if n < 0:
            raise ConfigError(f"max_concurrent can't be negative: {n}")
        f.limit_error = f"concurrent queries exceeded maximum {text}"
        f.max_concurrent = n
    elif opt == "next":
        f.next_rcodes.extend(_rcodes(c, failover=False))
    elif opt == "failover":
        f.failover_rcodes.extend(_rcodes(c, failover=True))
    elif opt == "failfast_all_unhealthy_upstreams":
        if c.remaining_args():
            raise c.arg_err()
        f.failfast = True
    else:
        raise c.errf("unknown property '%s'", opt)
