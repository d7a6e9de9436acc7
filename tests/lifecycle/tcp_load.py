"""A fixed-rate DNS-over-TCP (or -TLS) load: new connections, each sending pipelined queries, and a tally.

    python tcp_load.py HOST PORT RATE SECONDS [QUERIES_PER_CONNECTION [ZONE [CA_FILE [TLS_NAME]]]]

With CA_FILE, each connection is DNS over TLS (RFC 7858): the server's certificate is checked
against CA_FILE for TLS_NAME (HOST by default), the handshake done, then the queries sent as one
TLS record.

Opens RATE connections per second for SECONDS seconds (RATE * SECONDS connections in all, a bound).
Each connection sends all its queries at once (pipelined, one write) and reads one reply per query,
matched by ID and checked with dnspython (NOERROR; names under ZONE, example.org by default); then
it closes. Prints "started" when the first connection is due, and one JSON line at the end:
`sent` queries, `answered`, `lost`, and what happened to the connections that lost queries
(`refused`, `reset`: also a failed TLS handshake, `eof`: closed before every reply came, `timeout`:
nothing for 10 s).
"""

from __future__ import annotations

import json
import ssl
import struct
import sys
from collections import Counter

import dns.message
import dns.rcode
import trio

# per connection: longer than a SYN retransmission (1 s) and a lameduck's tail, and than this
# process (TLS handshakes in Python) falling behind on a loaded machine; silence past it is a loss
TIMEOUT = 10.0


def frames(conn: int, n: int, zone: str) -> tuple[bytes, set[int]]:
    out, ids = b"", set()
    for k in range(n):
        q = dns.message.make_query(f"c{conn}-{k}.{zone}", "A")
        q.id = (conn * n + k) & 0xFFFF
        ids.add(q.id)
        wire = q.to_wire()
        out += struct.pack(">H", len(wire)) + wire
    return out, ids


async def one(host: str, port: int, conn: int, n: int, zone: str, tally: Counter,
              tls: tuple[ssl.SSLContext, str] | None) -> None:
    data, ids = frames(conn, n, zone)
    tally["sent"] += n
    answered = 0
    outcome = "ok"
    with trio.move_on_after(TIMEOUT) as scope:
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        except OSError:
            tally["refused"] += 1
            tally["lost"] += n
            return
        if tls is not None:
            stream = trio.SSLStream(stream, tls[0], server_hostname=tls[1])
        async with stream:
            try:
                await stream.send_all(data)
                buf = b""
                while answered < n:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        outcome = "eof"
                        break
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                        size = struct.unpack(">H", buf[:2])[0]
                        r = dns.message.from_wire(buf[2 : 2 + size])
                        buf = buf[2 + size :]
                        if r.id in ids and r.rcode() == dns.rcode.NOERROR:
                            ids.discard(r.id)
                            answered += 1
            except (trio.BrokenResourceError, OSError):  # ssl.SSLError is an OSError
                outcome = "reset"
    if scope.cancelled_caught:
        outcome = "timeout"
    tally["answered"] += answered
    if answered < n:
        tally["lost"] += n - answered
        tally[outcome] += 1


def client_context(ca_file: str) -> ssl.SSLContext:
    """Verifies the server against `ca_file` (each connection a full handshake: no session is reused)."""
    return ssl.create_default_context(cafile=ca_file)


async def main(host: str, port: int, rate: int, seconds: float, n: int, zone: str, ca_file: str,
               tls_name: str) -> None:
    tally: Counter = Counter()
    tls = (client_context(ca_file), tls_name or host) if ca_file else None
    total = int(rate * seconds)
    print("started", flush=True)  # the caller places its lifecycle event after this
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for conn in range(total):
            await trio.sleep_until(start + conn / rate)
            nursery.start_soon(one, host, port, conn, n, zone, tally, tls)
    tally["connections"] = total
    print(json.dumps(dict(tally)), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
             int(sys.argv[5]) if len(sys.argv) > 5 else 3, sys.argv[6] if len(sys.argv) > 6 else "example.org",
             sys.argv[7] if len(sys.argv) > 7 else "", sys.argv[8] if len(sys.argv) > 8 else "")
