"""`python -m pycoredns_conformance diff`: run two DNS servers side by side and report every difference.

    python -m pycoredns_conformance diff --binary "python -m pycoredns" --reference /usr/bin/coredns
    python -m pycoredns_conformance diff --binary ./coredns-1.14.7 --reference ./coredns-1.12.0 --queries 20000
    python -m pycoredns_conformance diff --binary A --reference B --corefiles DIR   # Corefile mode

Both sides are commands that take `-conf FILE`. Fixture mode (default) runs each `--corefile` (default:
the suite's kubeadm and node-local-dns Corefiles) through both, with the suite's fixture cluster and
upstreams, and sends both the same probes: the suite's case queries, generated ones and malformed
packets. Corefile mode runs every file of a directory through both and compares the refusal (exit
status, message with file:line) or the answers to a few probes. Differences listed in an `--explained`
file are reported but do not fail the run.

Exit status: 0 when no unexplained difference was found, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..cases import COREFILES_DIR, Case, Query, load
from ..upstream import MAIN_ZONES, SECOND_ZONES
from .compare import Options
from .probes import (
    Probe,
    corefile_zones,
    describe,
    fixture_names,
    generated,
    malformed,
    query_wire,
    random_names,
    systematic,
    zone_data_names,
)
from .run import CorefileResult, Side, compare_corefile, corefile_case

DEFAULT_COREFILES = ("kubeadm", "nodelocaldns")
#: The fixture's own readiness probe: the kubernetes Service exists once the API is synced.
FIXTURE_READY = "kubernetes.default.svc.cluster.local. A"


def suite_probes() -> list[Probe]:
    """The DNS queries of the suite's cases (those without steps: steps change the world first)."""
    out: dict[str, Probe] = {}
    for c in load():
        q = c.query
        if q is None or c.steps or c.error or c.expect is None or c.expect.timeout:
            continue
        edns = q.bufsize if q.edns else None
        label = describe(q.name, q.type, q.proto, edns, q.do, q.rd, q.cd, q.rclass)
        out.setdefault(label, Probe(f"{c.id}: {label}", query_wire(q.name, q.type, 0xF000 + len(out) % 0x0FFF,
                                                                    edns=edns, do=q.do,
                                                                    rd=q.rd, cd=q.cd, rclass=q.rclass),
                                    q.proto, "suite"))
    return list(out.values())


def fixture_objects() -> list[dict[str, Any]]:
    from ..apiserver import FIXTURE_CLUSTER, load_objects

    return load_objects(FIXTURE_CLUSTER)


def names_for(text: str, extra: list[str]) -> list[str]:
    """Real names for a Corefile: zone apexes, the fixture's records under its kubernetes zones, the
    upstream zone data its forwarders serve, and names given on the command line."""
    zones = corefile_zones(text)
    names = list(zones) + extra
    if "@KUBECONFIG@" in text:
        objs = fixture_objects()
        for z in zones:
            if z != ".":
                names += fixture_names(objs, z)
    if "@UPSTREAM@" in text:
        names += zone_data_names(MAIN_ZONES)
    if "@UPSTREAM2@" in text:
        names += zone_data_names(SECOND_ZONES)
    return list(dict.fromkeys(n if n.endswith(".") else n + "." for n in names))


def fixture_probe_set(text: str, args: argparse.Namespace, rng: random.Random) -> list[Probe]:
    names = names_for(text, args.name or [])
    zones = corefile_zones(text) or ["."]
    out: list[Probe] = []
    if not args.no_suite:
        out += suite_probes()
    out += systematic(names)
    pool = names + random_names(zones, rng, max(50, len(names) // 2))
    out += generated(pool, rng, args.queries)
    if not args.no_malformed:
        out += malformed([n for n in names if n != "."] or ["example.org."])
    return out


def corefile_probe_set(text: str, args: argparse.Namespace, rng: random.Random) -> list[Probe]:
    names = names_for(text, args.name or [])
    zones = corefile_zones(text) or ["."]
    return systematic(names + random_names(zones, rng, 4), ("A", "AAAA", "SOA", "NS", "TXT", "SRV"))


# -- explanations ---------------------------------------------------------------------------------------


def load_explained(path: str | None) -> list[dict[str, str]]:
    """Intended differences: a YAML list of {corefile (glob), probe, field, a, b (regexes), case_only
    (true: the two sides differ only in the case of letters), reason}."""
    if not path:
        return []
    items = yaml.safe_load(Path(path).read_text()) or []
    for it in items:
        if not isinstance(it, dict) or "reason" not in it:
            raise ValueError(f"{path}: every entry needs a reason: {it!r}")
    return items


def explanation(items: list[dict[str, str]], corefile: str, probe: str, fld: str, a: str, b: str) -> str:
    for it in items:
        if not fnmatch.fnmatchcase(corefile, it.get("corefile", "*")):
            continue
        if it.get("case_only") and a.lower() != b.lower():
            continue
        if all(re.search(it[k], v) for k, v in (("probe", probe), ("field", fld), ("a", a), ("b", b)) if k in it):
            return str(it["reason"])
    return ""


# -- output -------------------------------------------------------------------------------------------


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def rows(results: list[CorefileResult], explained: list[dict[str, str]]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        for p, diffs, va, vb in r.found:
            for d in diffs:
                why = explanation(explained, r.name, p.label, d.field, d.a, d.b)
                out.append({"corefile": r.name, "probe": p.label, "proto": p.proto, "kind": p.kind,
                            "wire": p.wire.hex(), "field": d.field, "a": d.a, "b": d.b,
                            "explained": why or None, "a_reply": va.as_dict(), "b_reply": vb.as_dict()})
    return out


def print_table(diffs: list[dict[str, Any]], limit: int, out: Any) -> None:
    shown = [d for d in diffs if not d["explained"]][:limit]
    if shown:
        print(f"{'corefile':<14} {'probe':<58} {'field':<12} {'binary':<44} reference", file=out)
        for d in shown:
            print(f"{_cut(d['corefile'], 14):<14} {_cut(d['probe'], 58):<58} {_cut(d['field'], 12):<12} "
                  f"{_cut(d['a'], 44):<44} {_cut(d['b'], 60)}", file=out)
    hidden = sum(1 for d in diffs if not d["explained"]) - len(shown)
    if hidden > 0:
        print(f"... {hidden} more (see --json)", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pycoredns_conformance diff", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--binary", required=True, metavar="CMD", help="the server under test (takes -conf FILE)")
    ap.add_argument("--reference", required=True, metavar="CMD", help="the server it is compared with")
    ap.add_argument("--corefile", action="append", metavar="NAME|PATH",
                    help=f"a suite Corefile name or a file (default: {', '.join(DEFAULT_COREFILES)})")
    ap.add_argument("--corefiles", metavar="DIR", help="Corefile mode: every file in DIR, refusals and probes")
    ap.add_argument("--suite-corefiles", action="store_true",
                    help="Corefile mode over every Corefile the suite's cases use (broken ones included)")
    ap.add_argument("--queries", type=int, default=5000, help="generated probes per Corefile (default 5000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated probes (default 1)")
    ap.add_argument("--name", action="append", help="an extra name to probe (repeatable)")
    ap.add_argument("--no-suite", action="store_true", help="leave out the suite's case queries")
    ap.add_argument("--no-malformed", action="store_true", help="leave out the malformed packets")
    ap.add_argument("--ready", metavar="'NAME TYPE'", help="wait until this query answers NOERROR before probing "
                    f"(default for Corefiles using the fixture cluster: {FIXTURE_READY!r}; else any reply)")
    ap.add_argument("--ttl-tolerance", type=int, default=2, help="seconds TTLs may differ by (default 2)")
    ap.add_argument("--order", action="store_true", help="also compare the order of records in sections")
    ap.add_argument("--ignore-case", action="store_true", help="compare names case-insensitively")
    ap.add_argument("--keep-serial", action="store_true", help="compare SOA serials too (masked by default)")
    ap.add_argument("--ignore", action="append", default=[],
                    help="a field never compared: rcode flags id question opt answer authority additional ttl")
    ap.add_argument("--explained", metavar="FILE", help="YAML list of intended differences (not counted)")
    ap.add_argument("--jobs", type=int, default=8, help="probes in flight (default 8)")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply (default 2)")
    ap.add_argument("--json", metavar="FILE", help="write every difference and the summary as JSON")
    ap.add_argument("--limit", type=int, default=100, help="table rows shown (default 100)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)

    try:
        explained = load_explained(args.explained)
        corefiles = select_corefiles(args)
        sides = [Side("binary", args.binary), Side("reference", args.reference)]
        from ..runner import BinaryTarget

        for s in sides:
            s.target = BinaryTarget(s.command, keep=args.keep)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"diff: {exc}", file=sys.stderr)
        return 2
    opts = Options(ttl_tolerance=args.ttl_tolerance, order=args.order, ignore_case=args.ignore_case,
                   mask_soa_serial=not args.keep_serial, ignore=tuple(args.ignore))

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"  {msg}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    results: list[CorefileResult] = []
    try:
        for name, text, suite_case in corefiles:
            rng = random.Random(f"{args.seed}:{name}")
            ready = Query.parse(args.ready) if args.ready else (
                Query.parse(FIXTURE_READY) if "@KUBECONFIG@" in text else None)
            make = corefile_probe_set if args.corefiles or args.suite_corefiles else fixture_probe_set
            case = suite_case or corefile_case(name, text, ready)
            r = compare_corefile(name, case, sides[0], sides[1], lambda t=text, m=make, g=rng: m(t, args, g),
                                 opts, args.jobs, args.timeout, progress)
            results.append(r)
            progress(f"{name}: {r.status}, {r.probes} probes, {sum(len(d) for _p, d, _a, _b in r.found)} "
                     f"differences in {r.seconds:.1f}s")
    finally:
        for s in sides:
            if s.target is not None:
                s.target.close()
    diffs = rows(results, explained)
    unexplained = sum(1 for d in diffs if not d["explained"])
    probes = sum(r.probes for r in results)
    summary = {"binary": args.binary, "reference": args.reference, "date": time.strftime("%Y-%m-%d %H:%M UTC",
               time.gmtime()), "seed": args.seed, "corefiles": len(results), "probes": probes,
               "queries": 2 * probes, "differences": len(diffs), "unexplained": unexplained,
               "explained": len(diffs) - unexplained, "seconds": round(time.monotonic() - t0, 1)}
    print_table(diffs, args.limit, sys.stdout)
    for r in results:
        n = sum(len(d) for _p, d, _a, _b in r.found)
        extra = ""
        if r.status != "served":
            extra = "; ".join(f"{k}: exit {v['exit']} {v['message']!r}" if not v["serving"] else f"{k}: serving"
                              for k, v in r.sides.items())
        print(f"{r.name:<30} {r.status:<13} {r.probes:>6} probes {n:>5} differences  {extra}")
    print(f"diff: {len(results)} Corefiles, {probes} probes ({2 * probes} queries), {len(diffs)} differences "
          f"({unexplained} unexplained) in {summary['seconds']}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "corefiles": [r.as_dict() for r in results],
                                               "differences": diffs}, indent=1))
    return 1 if unexplained else 0


def select_corefiles(args: argparse.Namespace) -> list[tuple[str, str, Case | None]]:
    """(name, text, suite case) of every Corefile to run: a directory or the suite's Corefiles (Corefile
    mode), or names / paths (fixture mode)."""
    if args.suite_corefiles:  # one per group of the suite: its env, extra files and readiness probe too
        seen: dict[str, Case] = {}
        for c in load():
            if not c.error and c.corefile and c.group_key() not in seen:
                seen[c.group_key()] = c
        return [(f"{c.area}/{c.name}", c.corefile, c) for c in seen.values()]
    if args.corefiles:
        d = Path(args.corefiles)
        if not d.is_dir():
            raise ValueError(f"not a directory: {d}")
        files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"no Corefiles in {d}")
        return [(p.name, p.read_text(), None) for p in files]
    out = []
    for ref in args.corefile or DEFAULT_COREFILES:
        p = Path(ref)
        if p.is_file():
            out.append((p.name, p.read_text(), None))
        elif (COREFILES_DIR / f"Corefile.{ref}").is_file():
            out.append((ref, (COREFILES_DIR / f"Corefile.{ref}").read_text(), None))
        else:
            raise ValueError(f"no Corefile {ref!r} (a path, or a name in {COREFILES_DIR})")
    return out
