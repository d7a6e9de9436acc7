"""timeouts on a running server: maxtcpqueries closes a TCP connection after N queries, all answered."""

from __future__ import annotations

import dns.message
import dns.query
import trio
from conftest import running


async def _exchange(port: int, count: int) -> tuple[int, bytes]:
    """Send `count` queries on one TCP connection; (replies read, what follows them: b'' at EOF)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        for i in range(count):
            q = dns.message.make_query(f"q{i}.example.org.", "A").to_wire()
            await stream.send_all(len(q).to_bytes(2, "big") + q)
        buf = b""
        with trio.fail_after(5):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
    n = 0
    while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
        size = int.from_bytes(buf[:2], "big")
        dns.message.from_wire(buf[2 : 2 + size])
        buf = buf[2 + size :]
        n += 1
    return n, buf


async def test_maxtcpqueries_closes_after_n() -> None:
    # idle stays at 1 hour: only maxtcpqueries can close the connection within the 5 s bound
    cf = ". {\n timeouts {\n  maxtcpqueries 2\n  idle 1h\n }\n whoami\n}\n"
    async with running(cf) as srv:
        n, rest = await _exchange(srv.port(), 2)
        assert (n, rest) == (2, b"")
