"""Run pycoredns inside a trio program.

    async with pycoredns.embed.serve(corefile_text) as server:
        port = server.port()                     # ephemeral port when the Corefile says :0
        reply = await server.resolve("example.org.", "A")   # in-process, no sockets
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from dnslib import DNSRecord

from .loader import make_loader
from .process import Process, _only_leaf


@asynccontextmanager
async def serve(corefile: str | None = None, *, conf: str | None = None, dns_port: int = 0,
                filename: str = "Corefile", quiet: bool = True,
                lastgood: str | None = None) -> AsyncIterator[Process]:
    """Start a server from Corefile text (or the file `conf`, re-read on reload); stops it gracefully
    when the block exits.

    Keys without a port use `dns_port` (0 = pick a free port; read it back with `.port()`).
    Raises `pycoredns.exceptions.StartupError` if the configuration does not load. `lastgood` is a
    file for the last-known-good fallback (`pycoredns.lastgood`), as `-lastgood` on the command line.
    """
    if conf is not None:
        loader = make_loader(conf, dns_port)
    elif corefile is not None:
        def loader() -> tuple[str, str]:
            return corefile, filename
    else:
        raise TypeError("serve() needs Corefile text or conf=PATH")
    process = Process(loader, dns_port=dns_port, quiet=quiet, lastgood=lastgood)
    try:
        async with trio.open_nursery() as n:
            await n.start(process.run)
            try:
                yield process
            finally:
                process.stop()
    except BaseExceptionGroup as eg:
        leaf = _only_leaf(eg)
        if leaf is None:
            raise
        raise leaf from None


async def resolve(process: Process, name: str, qtype: str | int = "A", *, qclass: int = 1,
                  client: tuple[str, int] = ("127.0.0.1", 0)) -> DNSRecord:
    """Resolve without touching a socket (`Process.resolve`)."""
    return await process.resolve(name, qtype, qclass=qclass, client=client)
