"""forward's Corefile parsing: the TO list, every option (a table of parsers), and their errors."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller, config_uint, go_quote
from pycoredns.plugin import config_atoi as _atoi
from pycoredns.plugin import config_duration as _duration
from pycoredns.util import format_duration, normalize_zones

from .doh import DohProxy, alpn_context
from .handler import POLICIES, Forward
from .proxy import Proxy

log = plugin_logger("forward")

MAX_UPSTREAMS = 15
DEFAULT_PORTS = {"dns": 53, "tls": 853, "grpc": 443, "https": 443, "quic": 853}
SCHEMES = ("dns", "tls", "grpc", "https", "quic", "unix")


def setup(c: Controller) -> None:
    forwards = [parse_stanza(c) for _ in c.occurrences()]
    for f in forwards:
        if len(f.proxies) > MAX_UPSTREAMS:
            raise ConfigError(f"more than {MAX_UPSTREAMS} TOs configured: {len(f.proxies)}")
    for f in forwards:
        c.add_handler(f)
        c.on_startup(_starter(c, f))
        c.on_shutdown(f.shutdown)


def _starter(c: Controller, f: Forward) -> Callable[[], Awaitable[None]]:
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
    while c.next_block():
        parse_option(c, f)
    for text in to:  # before the TOs are read, as CoreDNS
        trans, rest = _split_scheme(text)
        if trans == "https" and "/" in rest:
            raise ConfigError("paths are not allowed in HTTPS upstream addresses (the /dns-query path is used "
                              f"by default): {text}")
    targets = parse_targets(to, f.resolvers)  # after the options, as CoreDNS (`resolver` is one)
    doh_tls: ssl.SSLContext | None = None
    for trans, host, port, server_name, text in targets:
        if trans not in ("dns", "tls", "https"):
            raise ConfigError(f"'{trans}' is not supported as a destination protocol in forward: {text}")
        if trans == "tls" and server_name and f.tls_servername:
            raise ConfigError(f"both forward ('{f.tls_servername}') and proxy level ('{server_name}') TLS "
                              f"servernames are set for upstream proxy '{text}'")
        p: Proxy
        if trans == "https":  # a `%name` suffix is ignored for DoH, as in CoreDNS
            doh_tls = doh_tls or alpn_context(_tls_context(f.tls_args))
            p = DohProxy((host, port), doh_tls, f.tls_servername or None, f.doh_method)
        else:
            tls = (f.tls_context or _tls_context([])) if trans == "tls" else None
            p = Proxy((host, port), trans, tls, server_name or f.tls_servername or None)
            p.read_timeout = f.read_timeout
        p.expire = f.expire
        p.hc_interval, p.hc_recursion, p.hc_domain = f.hc_interval, f.hc_recursion, f.hc_domain
        p.hc_tcp = f.force_tcp and trans != "tls"
        p.max_idle = f.max_idle_conns
        p.source = f.source_address
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


def parse_targets(to: list[str], resolvers: list[str] | None = None) -> list[Target]:
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
        for addr in _resolve(host, port, text, resolvers or []):
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


def _resolve(host: str, port: int, text: str, resolvers: list[str] | None = None) -> list[str]:
    """A host name TO, resolved once at startup with the system resolver; addresses de-duplicated.

    CoreDNS 1.14.7 (forward/resolve.go): a TO that is neither an address nor an existing file must be
    a domain name in miekg's sense (labels of at most 63 bytes, 255 in all), else `not an IP address,
    file, or valid domain`; a failed lookup is `failed to resolve %q: lookup NAME: no such host`."""
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 254 or any(not x or len(x.encode()) > 63 for x in labels):
        raise ConfigError(f"not an IP address, file, or valid domain: {go_quote(text)}")
    if not _HOSTNAME.match(host):  # Go's resolver refuses such names without asking anyone
        raise ConfigError(f"failed to resolve {go_quote(host)}: lookup {host}: no such host")
    if resolvers:
        return _dns_lookup(host, resolvers)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        why = "no such host" if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else e.strerror
        try:  # Go's resolver names the server that said so
            on = f" on {_join(read_resolv_conf('/etc/resolv.conf')[0], 53)}"
        except (ConfigError, IndexError):
            on = ""
        raise ConfigError(f"failed to resolve {go_quote(host)}: lookup {host}{on}: {why}") from None
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"failed to resolve {go_quote(host)}: lookup {host}: {e}") from None
    addrs: list[str] = []
    for _fam, _type, _proto, _canon, sa in infos:
        if sa[0] not in addrs:
            addrs.append(str(sa[0]))
    return addrs


def _dns_lookup(host: str, resolvers: list[str]) -> list[str]:
    """CoreDNS's dnsLookup for `resolver`: A then AAAA from each resolver in turn (2 s each) until one
    gives addresses."""
    from dnslib import QTYPE, DNSRecord

    last = ""
    for r in resolvers:
        rhost, rport = _split_host_port(r) if not _is_ip(r) else (r, "")
        addr = (rhost.strip("[]"), int(rport or 53))
        ips: list[str] = []
        for qtype in ("A", "AAAA"):
            q = DNSRecord.question(host.rstrip(".") + ".", qtype)
            family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(2.0)
                    s.sendto(q.pack(), addr)
                    reply = DNSRecord.parse(s.recv(65535))
            except (OSError, ValueError) as e:
                last = f"read udp {_join(*addr)}: {'i/o timeout' if isinstance(e, TimeoutError) else e}"
                if ips:
                    break
                continue
            want = QTYPE.A if qtype == "A" else QTYPE.AAAA
            ips += [str(rr.rdata) for rr in reply.rr if rr.rtype == want]
        if ips:
            return ips
    if last:
        raise ConfigError(f"failed to resolve {go_quote(host)}: {last}")
    raise ConfigError(f"failed to resolve {go_quote(host)}: no addresses found for {go_quote(host)}")


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
    """pkg/tls NewTLSConfigFromArgs: () system CAs, (CA), (CERT KEY), (CERT KEY CA); TLS >= 1.2.

    Errors as CoreDNS words them: the key pair first (`could not load TLS cert: ...`), then the CA
    (`error reading CA: open CA: ...`; a file without a certificate: `could not read root certs: <nil>`)."""
    ca = args[0] if len(args) == 1 else args[2] if len(args) == 3 else None
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if len(args) >= 2:
        try:
            ctx.load_cert_chain(args[0], args[1])
        except OSError as e:
            raise ConfigError(f"could not load TLS cert: {_key_pair_error(args[0], args[1], e)}") from None
    if ca is not None:
        try:
            with open(ca, encoding="ascii", errors="replace") as fh:
                pem = fh.read()
        except OSError as e:
            raise ConfigError(f"error reading {ca}: open {ca}: {(e.strerror or str(e)).lower()}") from None
        try:
            ctx = ssl.create_default_context(cadata=pem)  # the CA only, as Go's RootCAs
        except (ssl.SSLError, ValueError):
            raise ConfigError("could not read root certs: %!s(<nil>)") from None  # sic: Go formats a nil error
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if len(args) >= 2:
            ctx.load_cert_chain(args[0], args[1])
    return ctx


def _key_pair_error(cert: str, key: str, e: OSError) -> str:
    """Why Go's tls.LoadX509KeyPair fails: a missing file, or one without PEM data, else OpenSSL's reason."""
    for path, what in ((cert, "certificate"), (key, "key")):
        try:
            with open(path, "rb") as fh:
                if b"-----BEGIN" not in fh.read():
                    return f"tls: failed to find any PEM data in {what} input"
        except OSError as oe:
            return f"open {path}: {(oe.strerror or str(oe)).lower()}"
    return f"tls: {getattr(e, 'reason', None) or e}"


def _except(c: Controller, f: Forward) -> None:
    zones = c.remaining_args()
    if not zones:
        raise c.arg_err()
    f.ignored.extend(normalize_zones(zones))


def _max_fails(c: Controller, f: Forward) -> None:
    f.max_fails = _uint(_one_arg(c))


def _max_connect_attempts(c: Controller, f: Forward) -> None:
    f.max_connect_attempts = _uint(_one_arg(c))


def _health_check(c: Controller, f: Forward) -> None:
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


def _force_tcp(c: Controller, f: Forward) -> None:
    _no_args(c)
    f.force_tcp = True


def _prefer_udp(c: Controller, f: Forward) -> None:
    _no_args(c)
    f.prefer_udp = True


def _tls(c: Controller, f: Forward) -> None:
    args = c.remaining_args()
    if len(args) > 3:
        raise c.arg_err()
    f.tls_args = [c.path(a) for a in args]
    f.tls_context = _tls_context(f.tls_args)


def _tls_servername(c: Controller, f: Forward) -> None:
    f.tls_servername = _one_arg(c)


def _expire(c: Controller, f: Forward) -> None:
    dur = _duration(_one_arg(c))
    if dur < 0:
        raise ConfigError(f"expire can't be negative: -{format_duration(-dur)}")
    f.expire = dur


def _read_timeout(c: Controller, f: Forward) -> None:
    dur = _duration(_one_arg(c))
    if dur <= 0:
        raise ConfigError(f"read_timeout must be positive: {format_duration(dur)}")
    f.read_timeout = dur


def _max_idle_conns(c: Controller, f: Forward) -> None:
    n = _atoi(_one_arg(c))
    if n < 0:
        raise ConfigError(f"max_idle_conns can't be negative: {n}")
    f.max_idle_conns = n


def _doh_method(c: Controller, f: Forward) -> None:
    method = _one_arg(c)
    if method not in ("POST", "GET"):
        raise ConfigError("doh_method must be either POST or GET")
    f.doh_method = method


def _policy(c: Controller, f: Forward) -> None:
    name = _one_arg(c)
    if name not in POLICIES:
        raise c.errf("unknown policy '%s'", name)
    f.policy = POLICIES[name]()


def _max_concurrent(c: Controller, f: Forward) -> None:
    text = _one_arg(c)
    n = _atoi(text)
    if n < 0:
        raise ConfigError(f"max_concurrent can't be negative: {n}")
    f.limit_error = f"concurrent queries exceeded maximum {text}"
    f.max_concurrent = n


def _next(c: Controller, f: Forward) -> None:
    f.next_rcodes.extend(_rcodes(c, failover=False))


def _failover(c: Controller, f: Forward) -> None:
    f.failover_rcodes.extend(_rcodes(c, failover=True))


def _next_on_nodata(c: Controller, f: Forward) -> None:
    if c.next_arg():
        raise c.arg_err()
    f.next_on_nodata = True


def _source_address(c: Controller, f: Forward) -> None:
    """Go's net.ParseIP: an IPv4-mapped IPv6 address is the IPv4 address."""
    if not c.next_arg():
        raise c.arg_err()
    try:
        ip = ipaddress.ip_address(c.val())
    except ValueError:
        raise c.errf("invalid IP address: %s", c.val()) from None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    f.source_address = str(mapped or ip)


def _resolver(c: Controller, f: Forward) -> None:
    args = c.remaining_args()
    if not args:
        raise c.arg_err()
    for arg in args:
        try:
            host = _split_host_port(arg)[0] if not _is_ip(arg) else arg
        except ValueError:
            host = arg
        if not _is_ip(host.strip("[]")):
            raise ConfigError(f"resolver must be an IP address or IP:port: {go_quote(arg)}")
    f.resolvers = args


def _failfast(c: Controller, f: Forward) -> None:
    if c.remaining_args():
        raise c.arg_err()
    f.failfast = True


OPTIONS: dict[str, Callable[[Controller, Forward], None]] = {
    "except": _except,
    "max_fails": _max_fails,
    "max_connect_attempts": _max_connect_attempts,
    "health_check": _health_check,
    "force_tcp": _force_tcp,
    "prefer_udp": _prefer_udp,
    "tls": _tls,
    "tls_servername": _tls_servername,
    "expire": _expire,
    "read_timeout": _read_timeout,
    "doh_method": _doh_method,
    "max_idle_conns": _max_idle_conns,
    "policy": _policy,
    "max_concurrent": _max_concurrent,
    "next": _next,
    "failover": _failover,
    "failfast_all_unhealthy_upstreams": _failfast,
    "next_on_nodata": _next_on_nodata,
    "source_address": _source_address,
    "resolver": _resolver,
}


def parse_option(c: Controller, f: Forward) -> None:
    opt = c.val()
    parse = OPTIONS.get(opt)
    if parse is None:
        raise c.errf("unknown property '%s'", opt)
    parse(c, f)
