"""loadbalance's orderings: round robin (CoreDNS's shuffle), `prefer` subnets, `weighted` files.

Everything here works on lists of any record representation through `Accessors` (type, address,
owner), so the wire path (record indexes) and the dnslib path (RRs) share one implementation.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import trio

from pycoredns import wire
from pycoredns.log import plugin_logger
from pycoredns.util import parse_ip

log = plugin_logger("loadbalance")

TYPE_A, TYPE_CNAME, TYPE_MX, TYPE_AAAA = wire.TYPE_A, wire.TYPE_CNAME, wire.TYPE_MX, wire.TYPE_AAAA
ADDRESS = (TYPE_A, TYPE_AAAA)

T = TypeVar("T")
Subnet = tuple[int, int, int]  # (version, network int, mask int)


def shuffle(items: list[T]) -> None:
    """CoreDNS's roundRobinShuffle (random swaps driven by fresh 16-bit ids)."""
    n = len(items)
    if n == 2:
        if random.getrandbits(16) % 2 == 0:
            items[0], items[1] = items[1], items[0]
    elif n > 2:
        for j in range(n):
            p = j + random.getrandbits(16) % (n - j)
            if p != j:
                items[j], items[p] = items[p], items[j]


def _group(items: list[T], type_of: Callable[[T], int]) -> tuple[list[T], list[T], list[T], list[T]]:
    """(CNAMEs, A/AAAA, MX, everything else), each in the original order."""
    cname: list[T] = []
    address: list[T] = []
    mx: list[T] = []
    rest: list[T] = []
    for it in items:
        t = type_of(it)
        (address if t in ADDRESS else cname if t == TYPE_CNAME else mx if t == TYPE_MX else rest).append(it)
    return cname, address, mx, rest


def round_robin(items: list[T], type_of: Callable[[T], int]) -> list[T]:
    """CNAMEs, then other types in order, then shuffled A/AAAA, then shuffled MX."""
    if len(items) <= 1:
        return items
    cname, address, mx, rest = _group(items, type_of)
    shuffle(address)
    shuffle(mx)
    return cname + rest + address + mx


def prefer(items: list[T], type_of: Callable[[T], int], ip_of: Callable[[T], tuple[int, int] | None],
           subnets: Sequence[Subnet]) -> list[T]:
    """CoreDNS's reorderRecords: CNAMEs, addresses in the preferred subnets first, MX, the rest."""
    if len(items) <= 1:
        return items
    cname, address, mx, rest = _group(items, type_of)
    ips = [ip_of(a) for a in address]
    seen = [False] * len(address)
    matched: list[T] = []
    for version, net, mask in subnets:
        for i, ip in enumerate(ips):
            if not seen[i] and ip is not None and ip[0] == version and ip[1] & mask == net:
                matched.append(address[i])
                seen[i] = True
    unmatched = [a for i, a in enumerate(address) if not seen[i]]
    return cname + matched + unmatched + mx + rest


TYPE_SRV = wire.TYPE_SRV
WEIGHTED_TYPES = (TYPE_A, TYPE_AAAA, TYPE_SRV)
DEFAULT_WEIGHT_RELOAD = 30.0


class WeightFileError(Exception):
    """A weight file that cannot be read or parsed; str() is CoreDNS's message."""


def parse_weights(text: str, filename: str) -> dict[str, list[tuple[tuple[int, int], int]]]:
    """Weight file: a domain line, then `IP WEIGHT` lines (1-255); `#` lines are comments."""
    domains: dict[str, list[tuple[tuple[int, int], int]]] = {}
    dname = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            if _parse_ip(fields[0]) is not None:
                raise WeightFileError(f'wrong domain name:"{fields[0]}" in weight file {filename}. '
                                      "(Maybe a missing weight value?)")
            dname = fields[0].lower() if fields[0].endswith(".") else fields[0].lower() + "."
            domains.setdefault(dname, [])
        elif len(fields) == 2:
            ip = _parse_ip(fields[0])
            if ip is None:
                raise WeightFileError(f'wrong IP address:"{fields[0]}" in weight file {filename}')
            if not (fields[1].isascii() and fields[1].isdigit()) or not 0 < int(fields[1]) < 256:
                raise WeightFileError(f'wrong weight value:"{fields[1]}" in weight file {filename}')
            if not dname:
                raise WeightFileError(f"missing domain name in weight file {filename}")
            domains[dname].append((ip, int(fields[1])))
        else:
            raise WeightFileError(f'could not parse weight line:"{line}" in weight file {filename}')
    return domains


def _parse_ip(text: str) -> tuple[int, int] | None:
    """(version, value) of Go's net.ParseIP (`pycoredns.util.parse_ip`: ::ffff:a.b.c.d is a.b.c.d, as
    Go's net.IP.Equal treats it; no zone)."""
    ip = parse_ip(text)
    return None if ip is None else (ip.version, int(ip))


class Weighted:
    """The weight file (re-read every `reload` when its md5 changed) and the top-record choice."""

    def __init__(self, path: str, reload: float) -> None:
        self.path = path
        self.reload = reload
        self.digest = b""
        self.domains: dict[str, list[tuple[tuple[int, int], int]]] = {}

    def update(self) -> bool:
        """Re-read the file; True when the weights changed. Raises WeightFileError."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            raise WeightFileError("weight file open error") from None
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        if digest == self.digest:
            return False
        self.domains = parse_weights(data.decode("utf-8", "replace"), self.path)
        self.digest = digest
        log.info(f"Successfully reloaded weight file {self.path}")
        return True

    async def reload_loop(self) -> None:
        while True:
            await trio.sleep(self.reload)
            try:
                self.update()
            except WeightFileError as e:
                log.error(str(e))

    def reorder(self, items: list[T], acc: Accessors[T]) -> list[T]:
        """CNAMEs, the rest, the addresses with one chosen by weight swapped to the top, MX."""
        cname, address, mx, rest = _group(items, acc.type_of)
        if not address:
            return items
        top = self._top(address, acc)
        if top > 0:
            address[0], address[top] = address[top], address[0]
        return cname + rest + address + mx

    def _top(self, address: list[T], acc: Accessors[T]) -> int:
        weighted = []
        for i, rr in enumerate(address):
            ip = acc.ip_of(rr)
            weight = next((wt for wip, wt in self.domains.get(acc.name_of(rr), ()) if wip == ip), 1)
            weighted.append((weight, i))
        weighted.sort(key=lambda x: -x[0])
        v = random.randrange(sum(wt for wt, _ in weighted))
        acc_sum = 0
        for wt, i in weighted:
            acc_sum += wt
            if v < acc_sum:
                return i
        return -1


class Accessors(Generic[T]):
    """How to read a record's type, address and owner name, for byte slices or dnslib RRs."""

    __slots__ = ("ip_of", "name_of", "type_of")

    def __init__(self, type_of: Callable[[T], int], ip_of: Callable[[T], tuple[int, int] | None],
                 name_of: Callable[[T], str]) -> None:
        self.type_of = type_of
        self.ip_of = ip_of
        self.name_of = name_of


