"""A DNS upstream (UDP and TCP) that answers every query after a fixed delay: queries stay in flight.

    python slow_upstream.py HOST PORT DELAY_SECONDS     (prints "ready" once bound)

Every answer is NOERROR with one A record (192.0.2.1) for the question asked.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys

import trio

ANSWER = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])


def reply(query: bytes) -> bytes | None:
    off = 12
    while off < len(query) and query[off]:
        off += 1 + query[off]
    end = off + 5
    if len(query) < end:
        return None
    return query[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + query[12:end] + ANSWER


async def answer(sock, data: bytes, addr, delay: float) -> None:
    await trio.sleep(delay)
    out = reply(data)
    if out is not None:
        await sock.sendto(out, addr)


async def answer_tcp(stream: trio.SocketStream, delay: float) -> None:
    """Length-prefixed queries, each answered `delay` after it was read (pipelined ones too)."""
    sending = trio.Lock()  # one send_all at a time on the stream

    async def later(data: bytes) -> None:
        await trio.sleep(delay)
        out = reply(data)
        if out is not None:
            async with sending:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(struct.pack(">H", len(out)) + out)

    buf = b""
    async with stream, trio.open_nursery() as n:
        while chunk := await stream.receive_some(65536):
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                size = struct.unpack(">H", buf[:2])[0]
                n.start_soon(later, buf[2 : 2 + size])
                buf = buf[2 + size :]


async def main(host: str, port: int, delay: float) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind((host, port))
    listeners = await trio.open_tcp_listeners(port, host=host)
    print("ready", flush=True)
    async with trio.open_nursery() as n:
        n.start_soon(trio.serve_listeners, lambda s: answer_tcp(s, delay), listeners)
        while True:
            data, addr = await sock.recvfrom(4096)
            n.start_soon(answer, sock, data, addr, delay)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
