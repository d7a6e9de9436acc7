"""What a shutting-down server has accepted is answered: queued datagrams and queued TCP connections.

The receive loops are stopped first, so the queries wait in the kernel (the UDP receive queue, the TCP
accept backlog) as they do between "stop receiving" and "close" during a hand-over; the graceful
shutdown must read and answer them before it closes the sockets.
"""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode
import trio
from conftest import running


async def test_queued_udp_queries_and_tcp_connections_are_answered_at_shutdown() -> None:
    udp_answers: list[int] = []
    tcp_answers: list[int] = []
    async with trio.open_nursery() as n:
        async with running(". {\n whoami\n}\n") as srv:
            port = srv.port()
            await srv.instance.stop_receiving()
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await sock.bind(("127.0.0.1", 0))
            for i in range(50):
                q = dns.message.make_query(f"q{i}.example.org", "A")
                await sock.sendto(q.to_wire(), ("127.0.0.1", port))

            async def tcp_client() -> None:
                q = dns.message.make_query("tcp.example.org", "A")
                r = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=10)
                tcp_answers.append(r.rcode())

            n.start_soon(tcp_client)
            await trio.sleep(0.3)  # the connection is in the backlog, the datagrams in the queue
        with sock, trio.move_on_after(10):
            while len(udp_answers) < 50:
                udp_answers.append(dns.message.from_wire(await sock.recv(4096)).rcode())
    assert udp_answers == [dns.rcode.NOERROR] * 50
    assert tcp_answers == [dns.rcode.NOERROR]
