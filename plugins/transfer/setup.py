"""`transfer [ZONES...] { to ADDRESS...|*; source IP }`: CoreDNS's parse and error texts."""

from __future__ import annotations

import ipaddress

from pycoredns.config import origins_from_args_or_keys
from pycoredns.plugin import ConfigError, Controller

from .handler import Transfer, Xfr

DNS_PORT = "53"


def host_port(s: str, default_port: str) -> str:
    """plugin/pkg/parse.HostPort: `IP` or `IP:PORT` (`[v6]:PORT`) → `host:port`; else Go's error."""
    addr, port = _split_host_port(s)
    if addr is None:
        if not _is_ip(s):
            raise ConfigError(f"must specify an IP address: `{s}'")
        return _join(s, default_port)
    if not _is_ip(addr):
        raise ConfigError(f"must specify an IP address: `{addr}'")
    return _join(addr, port or default_port)


def _split_host_port(s: str) -> tuple[str | None, str]:
    """net.SplitHostPort, loosely: (host, port), or (None, "") when `s` is not host:port."""
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or not s[end + 1 :].startswith(":"):
            return None, ""
        return s[1:end], s[end + 2 :]
    if s.count(":") != 1:
        return None, ""
    host, port = s.split(":")
    return host, port


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s.split("%")[0])
        return True
    except ValueError:
        return False


def _join(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def setup(c: Controller) -> None:
    handler = Transfer()
    for _ in c.occurrences():
        x = Xfr(origins_from_args_or_keys(c.remaining_args(), c.keys))
        while c.next_block():
            option = c.val()
            if option == "to":
                args = c.remaining_args()
                if not args:
                    raise c.arg_err()
                x.to += [a if a == "*" else host_port(a, DNS_PORT) for a in args]
            elif option == "source":
                args = c.remaining_args()
                if len(args) != 1:
                    raise c.arg_err()
                if x.source is not None:
                    raise ConfigError(f"plugin/transfer: {c.err('source already specified')}")
                if not _is_ip(args[0]):
                    raise ConfigError(f"plugin/transfer: {c.errf('invalid source address %q', args[0])}")
                x.source = args[0]
            else:
                raise ConfigError(f"plugin/transfer: {c.errf('unknown property %q', option)}")
        if not x.to:
            raise ConfigError(f"plugin/transfer: {c.err(chr(39) + 'to' + chr(39) + ' is required')}")
        handler.xfrs.append(x)
    block = c.block

    async def find_transferers() -> None:
        handler.transferers = [h for h in block.handlers if h is not handler and callable(getattr(h, "transfer", None))]

    c.on_startup(find_transferers)
    c.start_soon(handler.notifier)
    c.add_handler(handler)
