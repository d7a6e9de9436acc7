"""The `pycoredns` command: the coredns binary's flags, defaults and exit codes (reference §4)."""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from . import COREDNS_VERSION, __version__, directives, log
from .exceptions import StartupError
from .loader import Loader, make_loader
from .process import Process, _only_leaf

if TYPE_CHECKING:
    from .nodecache import NodeCache
    from .pod import Pod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycoredns", description="CoreDNS-compatible DNS server",
                                allow_abbrev=False)
    p.add_argument("-conf", "--conf", default="", help="Corefile to load (default: ./Corefile); 'stdin' reads stdin")
    p.add_argument("-dns.port", "--dns.port", "-p", dest="port", default="53", help="Default port")
    p.add_argument("-pidfile", "--pidfile", default="", help="Path to write pid file")
    p.add_argument("-plugins", "--plugins", action="store_true", help="List installed plugins")
    p.add_argument("-quiet", "--quiet", action="store_true", help="Quiet mode (no initialization output)")
    p.add_argument("-lastgood", "--lastgood", default="", metavar="PATH",
                   help="Store the last configuration that loaded in PATH; start on it when the Corefile fails")
    p.add_argument("-version", "--version", action="store_true", help="Show version")
    p.add_argument("-workers", "--workers", default="1", metavar="N|auto",
                   help="server processes sharing the ports with SO_REUSEPORT; auto: the cgroup CPU quota "
                   "(pycoredns only; see README)")
    p.add_argument("-validate", "--validate", action="store_true",
                   help="load the Corefile and its imports and run every plugin's setup, then exit 0, or 1 with "
                   "the error a start would print; binds nothing, contacts nothing (pycoredns only)")
    # node-cache mode (k8s-dns-node-cache's flags), active when -localip is given
    nc = p.add_argument_group("node-local cache networking")
    nc.add_argument("-localip", "--localip", default="", help="comma-separated local IPs to listen on and manage")
    nc.add_argument("-setupinterface", "--setupinterface", type=_gobool, nargs="?", const=True, default=True)
    nc.add_argument("-interfacename", "--interfacename", default="nodelocaldns")
    nc.add_argument("-setupiptables", "--setupiptables", type=_gobool, nargs="?", const=True, default=True)
    nc.add_argument("-syncinterval", "--syncinterval", type=float, default=60.0, help="seconds between re-checks")
    nc.add_argument("-skipteardown", "--skipteardown", type=_gobool, nargs="?", const=True, default=False)
    nc.add_argument("-health-port", "--health-port", type=int, default=8080)
    nc.add_argument("-basecorefile", "--basecorefile", default="/etc/coredns/Corefile.base")
    nc.add_argument("-corefile", "--corefile", default="/etc/Corefile")
    nc.add_argument("-upstreamsvc", "--upstreamsvc", default="kube-dns")
    nc.add_argument("-kubednscm", "--kubednscm", default="", help="accepted for compatibility; not read")
    nc.add_argument("-metrics-listen-address", "--metrics-listen-address", default="0.0.0.0:9353",
                    help="accepted for compatibility; node-cache metrics are served by the prometheus plugin")
    nc.add_argument("-reloadwithsignal", "--reloadwithsignal", type=_gobool, nargs="?", const=True, default=False)
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return p


def _workers(args: argparse.Namespace) -> int | None:
    """-workers N, or `auto`: the cgroup CPU quota (`pycoredns.workers.auto_count`; 1 with -localip,
    where one process owns the node's addresses). None when invalid."""
    if args.workers == "auto":
        from .workers import auto_count

        return 1 if args.localip else auto_count()
    try:
        n = int(args.workers)
    except ValueError:
        return None
    return n if n >= 1 and not (n > 1 and args.localip) else None


def _gobool(text: str) -> bool:
    """Go's flag bool values (`-flag=false`)."""
    v = text.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"parse error: {text!r}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.extra:
        print(f"extra command line arguments: {args.extra}", file=sys.stderr)
        return 1
    if args.version:
        print(f"CoreDNS-{COREDNS_VERSION}")
        print(f"linux/{os.uname().machine}, python{sys.version.split()[0]}, pycoredns-{__version__}")
        return 0
    if args.plugins:
        print("Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:")
        for name in directives.available():
            print(f"  dns.{name}")
        print()
        return 0
    try:
        port = int(args.port)
    except ValueError:
        print(f'invalid value "{args.port}" for flag -dns.port', file=sys.stderr)
        return 2
    if args.validate:
        return _validate(args, port)
    workers = _workers(args)
    if workers is None:
        print("-workers must be auto or at least 1, and 1 with -localip", file=sys.stderr)
        return 2
    log.configure()
    if workers > 1:
        from .pod import Pod
        from .workers import supervise

        loader = make_loader(args.conf, port)
        if args.conf == "stdin":
            loader()  # read once here: the workers inherit the text, not the consumed stdin

        pod_id = f"{os.getpid()}-{secrets.token_hex(4)}"  # unique even where pids repeat (pycoredns.pod)

        def worker(index: int, ready: Callable[[], None]) -> int:
            return _serve(args, loader, port, quiet=args.quiet or index > 0, pidfile=None, ready=ready,
                          pod=Pod(pod_id, index, workers))

        return supervise(workers, worker, args.pidfile or None)
    node = None
    conf = args.conf
    if args.localip:
        node, conf = _node_cache(args, port)
        if node is None:
            return 1
    return _serve(args, make_loader(conf, port), port, quiet=args.quiet, pidfile=args.pidfile or None, node=node)


def _validate(args: argparse.Namespace, port: int) -> int:
    """-validate: read the Corefile and its imports and run every plugin's setup exactly as a start does,
    then stop before anything starts. Setup only registers what runs later (startup hooks such as
    kubernetes' watch, background tasks such as forward's health checks, listeners, HTTP routes), so
    nothing is bound and no API server or upstream is contacted. Exit 0, or 1 with the start's message.

    With -localip and an existing -basecorefile (node-local-dns), the base is filled in as a start
    would and checked under the name the start writes it to, without writing it or touching the node.
    """
    loader = make_loader(args.conf, port)
    if args.localip:
        from . import nodecache

        conf = args.conf or args.corefile
        loader = make_loader(conf, port)
        if os.path.exists(args.basecorefile):
            try:
                text = nodecache.fill_base_corefile(args.basecorefile, nodecache.parse_local_ips(args.localip),
                                                    args.upstreamsvc)
            except (OSError, ValueError) as e:
                print(str(e), file=sys.stderr)
                return 1
            loader = lambda: (text, conf)  # noqa: E731
    process = Process(loader, dns_port=port, quiet=True)

    async def load() -> str:
        return process.load().filename

    try:
        filename = trio.run(load)
    except StartupError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"{filename}: valid")
    return 0


# The collector's first-generation threshold for a serving process (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect less often in a serving process; called once, at process start, before the server runs.

    A query allocates and frees its objects (no net growth), but a filling cache, a kubernetes sync or
    a growing pending table adds tracked objects steadily, and each 700 of them cost a young collection,
    every tenth of those a middle one and, as the heap grows, full ones that walk the whole heap. Under
    300,000 cache misses that was 9.6 % of the server's CPU (360 ms of 3.76 s, 541/49/5 collections);
    with gen0 at 50,000 it is 0.4 % (1 collection). Cycles (trio's exception tracebacks) are still
    collected, within 50,000 allocations. `gc.freeze()` moves what the imports made (trio, dnslib,
    the plugins) out of the collector's reach, so a full collection walks only what serving made.
    """
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _serve(args: argparse.Namespace, loader: Loader, port: int, *, quiet: bool, pidfile: str | None,
           node: NodeCache | None = None, ready: Callable[[], None] | None = None, pod: Pod | None = None) -> int:
    """Run one server process until it stops; its exit status. `ready()` is called once it serves."""
    tune_gc()
    process = Process(loader, dns_port=port, quiet=quiet,
                      pidfile=pidfile, lastgood=args.lastgood or None)
    process.pod = pod
    try:
        trio.run(_run, process, node, args, ready)
    except StartupError as e:
        print(str(e), file=sys.stderr)
        return 1
    except BaseExceptionGroup as eg:
        leaf = _only_leaf(eg)
        if isinstance(leaf, StartupError):
            print(str(leaf), file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 2
    finally:
        if node is not None:
            node.teardown()
    if pod is not None and process.exit_code == 0:
        pod.hand_over()  # a gracefully stopped worker's counts stay in the pod's totals
    return process.exit_code


def _node_cache(args: argparse.Namespace, port: int) -> tuple[NodeCache | None, str]:
    """Set up node-cache networking before the servers start; (None, _) after printing an error."""
    from . import nodecache

    try:
        ips = nodecache.parse_local_ips(args.localip)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return None, ""
    conf = args.conf or args.corefile
    if os.path.exists(args.basecorefile):
        try:
            nodecache.render_base_corefile(args.basecorefile, conf, ips, args.upstreamsvc)
        except OSError as e:
            print(f"Failed to write Corefile: {e}", file=sys.stderr)
            return None, ""
    cfg = nodecache.NodeCacheConfig(ips, interface=args.interfacename, setup_interface=args.setupinterface,
                                    setup_iptables=args.setupiptables, port=port, health_port=args.health_port,
                                    sync_interval=args.syncinterval, skip_teardown=args.skipteardown)
    node = nodecache.NodeCache(cfg)
    try:
        node.setup_before_start()
    except OSError as e:
        print(str(e), file=sys.stderr)
        node.teardown()
        return None, ""
    return node, conf


async def _run(process: Process, node: NodeCache | None = None, args: argparse.Namespace | None = None,
               ready: Callable[[], None] | None = None) -> None:
    async with trio.open_nursery() as n:
        n.start_soon(_signals, process)
        if ready is not None:
            n.start_soon(_notify_ready, process, ready)
        if node is not None:
            assert args is not None
            n.start_soon(node.run, process.started)
            if os.path.exists(args.basecorefile):
                n.start_soon(node.watch_base, args.basecorefile, args.conf or args.corefile,
                             node.cfg.local_ips, args.upstreamsvc)
        await process.run()
        n.cancel_scope.cancel()


async def _notify_ready(process: Process, ready: Callable[[], None]) -> None:
    await process.started.wait()
    ready()


async def _signals(process: Process) -> None:
    """SIGTERM/SIGINT: graceful stop (a second SIGINT forces exit 2); SIGUSR1: reload; SIGHUP: ignored."""
    sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP, signal.SIGQUIT]
    with trio.open_signal_receiver(*sigs) as received:
        interrupted = False
        async for sig in received:
            if sig == signal.SIGUSR1:
                process.request_reload()
            elif sig == signal.SIGQUIT:
                os._exit(0)
            elif sig == signal.SIGINT:
                if interrupted:
                    os._exit(2)
                interrupted = True
                log.core.info("SIGINT: Shutting down")
                process.stop()
            elif sig == signal.SIGTERM:
                log.core.info("SIGTERM: Shutting down servers then terminating")
                process.stop()


if __name__ == "__main__":
    sys.exit(main())
