"""How many queries a cache misses when a name set cycles through it: CoreDNS's 256 shards, the same
shards with the shard function pycoredns used until the sixth session, and pycoredns' one store of
the same total capacity (not a test; bench/README.md, issue 11, node-local rows).

    python bench/shard_sim.py [--names 10000] [--passes 6] [--nx-every 0]

The sharded caches evict one random entry of a full shard (max(CAP/256, 4) entries, 39 for
`cache 30`), so the miss rate of a name set larger than a shard holds depends only on how evenly the
names fall on the shards; the one store evicts one random entry only when all 9,984 places are taken.
CoreDNS 1.14.7 (plugin/cache/cache.go `hash`) takes the shard from the low 8 bits of
FNV-1 64 over "0"/"1" for DO, "0"/"1" for CD, qtype and qclass (big-endian) and the lowercased
presentation name; pycoredns from Python's `hash` of the wire name. FNV-1's low byte depends only on
the low bytes it has read, so names that differ in a counter (compare.py's n0..n9999.bench.test.)
spread more evenly than a random hash would put them. `--nx-every 4` leaves every 4th name out of the
cache (compare.py's NXDOMAIN-without-SOA row: never stored). Python's `hash` of bytes is seeded per
process, so the old function's figure moves a little from run to run (PYTHONHASHSEED).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Callable

SHARDS = 256
SHARD_SIZE = 9984 // SHARDS  # `cache 30`: capacity 9984


def coredns_shard(name: str, qtype: int = 1, qclass: int = 1, do: bool = False, cd: bool = False) -> int:
    h = 0xCBF29CE484222325
    for b in (b"1" if do else b"0") + (b"1" if cd else b"0") + qtype.to_bytes(2, "big") + qclass.to_bytes(2, "big") \
            + name.lower().encode():
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF  # FNV-1: multiply, then xor
        h ^= b
    return h & (SHARDS - 1)


def pycoredns_shard(name: str) -> int:
    labels = [p.encode() for p in name.rstrip(".").lower().split(".") if p]
    return hash(b"".join(bytes([len(p)]) + p for p in labels) + b"\x00") & (SHARDS - 1)


def one_store(name: str) -> int:
    return 0


def miss_rate(names: list[str], shard_of: Callable[[str], int], shard_size: int, passes: int,
              stored: Callable[[int], bool]) -> float:
    """Misses over all passes after the first, each shard evicting a random entry when full."""
    rnd = random.Random(1)
    shards: list[dict[str, int]] = [{} for _ in range(SHARDS)]
    keys: list[list[str]] = [[] for _ in range(SHARDS)]
    where = [shard_of(n) for n in names]
    misses = asked = 0
    for p in range(passes):
        for i, n in enumerate(names):
            d, k = shards[where[i]], keys[where[i]]
            if p:
                asked += 1
            if n in d:
                continue
            if p:
                misses += 1
            if not stored(i):
                continue
            if len(k) >= shard_size:
                j = int(rnd.random() * len(k))
                victim, last = k[j], k.pop()
                if j < len(k):
                    k[j] = last
                    d[last] = j
                del d[victim]
            d[n] = len(k)
            k.append(n)
    return misses / asked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--nx-every", type=int, default=0, help="every Nth name is never stored (0: none)")
    args = ap.parse_args()
    names = [f"n{i}.bench.test." for i in range(args.names)]

    def stored(i: int) -> bool:
        return not args.nx_every or i % args.nx_every != 0

    for label, fn, size in (("CoreDNS (FNV-1 low byte)", coredns_shard, SHARD_SIZE),
                            ("old pycoredns (hash of the wire name)", pycoredns_shard, SHARD_SIZE),
                            ("pycoredns (one store)", one_store, SHARD_SIZE * SHARDS)):
        fill = Counter(fn(n) for i, n in enumerate(names) if stored(i))
        over = sum(max(0, c - size) for c in fill.values())
        print(f"{label:38s} fullest shard {max(fill.values()):5d}, names over capacity {over:4d}, "
              f"misses {100 * miss_rate(names, fn, size, args.passes, stored):.1f} %")


if __name__ == "__main__":
    main()
