"""`python -m pycoredns_conformance`: check a DNS server against the Kubernetes DNS spec and CoreDNS's behaviour.

    python -m pycoredns_conformance --binary "python -m pycoredns"          # the suite starts everything
    python -m pycoredns_conformance --binary /usr/local/bin/coredns --junit out.xml
    python -m pycoredns_conformance --server 127.0.0.1:1053 --apiserver http://127.0.0.1:8001   # a running server
    python -m pycoredns_conformance diff --binary "python -m pycoredns" --reference /usr/bin/coredns  # side by side

Exit status: 0 when every case of a required level passed, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cases import DEFAULT_REQUIRED, LEVELS, load
from .kube import KubeError, load_fixture
from .report import summary, table, to_json, to_junit
from .runner import BinaryTarget, Result, ServerTarget, Target, run


def server_from_kubeconfig(path: str) -> str:
    """The `server:` URL of the current context's cluster in a kubeconfig."""
    import yaml

    cfg = yaml.safe_load(Path(path).read_text()) or {}
    ctx_name = cfg.get("current-context")
    ctx = next((c["context"] for c in cfg.get("contexts", []) if c.get("name") == ctx_name), None)
    clusters = {c["name"]: c["cluster"] for c in cfg.get("clusters", [])}
    cluster = clusters.get(ctx["cluster"]) if ctx else next(iter(clusters.values()), None)
    if not cluster or "server" not in cluster:
        raise ValueError(f"{path}: no cluster server URL")
    return str(cluster["server"])


def parse_hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:  # `python -m pycoredns_conformance diff ...`: two servers side by side
        from .diff import main as diff_main

        return diff_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m pycoredns_conformance", description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--binary", metavar="CMD",
                       help='start this server per Corefile with "-conf FILE", e.g. /usr/bin/coredns or '
                       '"python -m pycoredns"')
    where.add_argument("--server", metavar="HOST:PORT", help="a running server that serves the fixture cluster")
    ap.add_argument("--apiserver", metavar="URL", help="with --server: load the fixture cluster into this "
                    "Kubernetes API (plain HTTP) before running")
    ap.add_argument("--kubeconfig", metavar="PATH", help="with --server: like --apiserver, URL from this kubeconfig")
    ap.add_argument("--area", action="append", help="only these areas (spec, coredns, corefile, cache-forward)")
    ap.add_argument("--level", action="append", choices=LEVELS, help="only cases of these levels")
    ap.add_argument("--require", default=",".join(DEFAULT_REQUIRED),
                    help=f"levels whose failures fail the run (default {','.join(DEFAULT_REQUIRED)})")
    ap.add_argument("-k", dest="match", action="append", help="only cases whose area/name contains this")
    ap.add_argument("--xfail", action="append", default=[], metavar="CASE",
                    help="known failure (area/name); reported as xfail, does not fail the run")
    ap.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    ap.add_argument("--json", metavar="FILE", help="write JSON results here")
    ap.add_argument("--jobs", type=int, default=4, help="Corefile groups run in parallel (default 4)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (Corefiles, logs)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="show details for passing cases too")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    args = ap.parse_args(argv)

    required = tuple(x for x in args.require.split(",") if x)
    bad = [x for x in required if x not in LEVELS]
    if bad:
        ap.error(f"unknown level(s) in --require: {', '.join(bad)}")
    cases = load(args.area)
    if args.level:
        cases = [c for c in cases if c.level in args.level]
    if args.match:
        cases = [c for c in cases if any(m in c.id for m in args.match)]
    if args.list:
        for c in cases:
            what = c.query.text() if c.query else c.http.text() if c.http else f"exit {c.exit}"
            print(f"{c.id:<55} {c.level:<9} {what}")
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        ap.error("no cases selected")

    target: Target
    try:
        if args.binary:
            target = BinaryTarget(args.binary, jobs=args.jobs, keep=args.keep)
        elif args.server:
            host, port = parse_hostport(args.server)
            target = ServerTarget(host, port)
            url = args.apiserver or (server_from_kubeconfig(args.kubeconfig) if args.kubeconfig else "")
            if url:
                n = load_fixture(url)
                print(f"fixture cluster loaded into {url} ({n} objects created)", file=sys.stderr)
        else:
            ap.error("one of --binary or --server is required")
    except (ValueError, RuntimeError, OSError, KubeError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2

    def progress(r: Result) -> None:
        if not args.quiet:
            print(f"  {r.status:<5} {r.case.id}", file=sys.stderr, flush=True)

    try:
        result = run(cases, target, required=required, xfail=set(args.xfail), progress=progress)
    finally:
        target.close()
    if args.quiet:
        from .runner import ERROR, FAIL, Run

        shown = Run([r for r in result.results if r.status in (FAIL, ERROR)], result.required, result.seconds)
        table(shown, sys.stdout, args.verbose, footer=False)
        print(summary(result))
    else:
        table(result, sys.stdout, args.verbose)
    if args.junit:
        Path(args.junit).write_text(to_junit(result))
    if args.json:
        Path(args.json).write_text(to_json(result))
    return 1 if result.failed_required() else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `python -m pycoredns_conformance --list | head`
        sys.stderr.close()
        sys.exit(0)
