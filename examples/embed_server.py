"""Embed pycoredns in a trio program: start a server from Corefile text, query it, stop it.

    python examples/embed_server.py
"""

from __future__ import annotations

import trio

from pycoredns.embed import serve

COREFILE = """
example.org:0 {
    chaos pycoredns-embedded
    whoami
}
"""


async def main() -> None:
    async with serve(COREFILE) as server:
        print(f"serving example.org on 127.0.0.1:{server.port()} (UDP and TCP)")
        reply = await server.resolve("www.example.org.", "A")  # in-process, no sockets
        print(reply)


if __name__ == "__main__":
    trio.run(main)
