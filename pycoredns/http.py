"""A tiny HTTP/1.1 server on trio for health, ready and metrics endpoints.

One `HTTPServer` per listen address is shared process-wide (CoreDNS runs one per address across
server blocks) and survives reloads; a configuration registers its routes and drops them when it
stops.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import trio

Route = Callable[[str, str], Awaitable[tuple[int, str, bytes]] | tuple[int, str, bytes]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
            500: "Internal Server Error"}


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `:port`, `[v6]:port` → (host, port). Raises ValueError on anything else."""
    if address.startswith("["):
        host, _, port = address[1:].partition("]:")
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            raise ValueError(f"address {address}: missing port in address")
    if not port.isdigit():
        raise ValueError(f"address {address}: invalid port")
    return host, int(port)


class HTTPServer:
    def __init__(self, address: str, host: str, port: int) -> None:
        self.address = address
        self.host = host
        self.port = port
        self.routes: dict[str, Route] = {}
        self.sock: socket.socket | None = None
        self.scope = trio.CancelScope()
        self.users = 0

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Like the DNS sockets: lets a surging DaemonSet pod bind health/metrics beside the old one.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        host = self.host
        if host == "localhost":
            host = "127.0.0.1"
        s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), self.port))
        s.listen(128)
        s.setblocking(False)
        self.sock = s

    @property
    def bound_port(self) -> int:
        return self.sock.getsockname()[1] if self.sock else self.port

    async def serve(self) -> None:
        assert self.sock is not None
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))
        with self.scope:
            async with trio.open_nursery() as n:
                while True:
                    stream = await listener.accept()
                    n.start_soon(self._conn, stream)

    def close(self) -> None:
        self.scope.cancel()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def _conn(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(10):
                buf = b""
                while b"\r\n\r\n" not in buf and len(buf) < 65536:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    buf += chunk
                line = buf.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split()
                if len(parts) < 2:
                    return
                method, target = parts[0], parts[1]
                path = target.split("?", 1)[0]
                route = self.routes.get(path)
                if route is None:
                    status, ctype, body = 404, "text/plain; charset=utf-8", b"404 page not found\n"
                else:
                    result = route(method, target)
                    if not isinstance(result, tuple):
                        result = await result
                    status, ctype, body = result
                head = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                await stream.send_all(head.encode() + (body if method != "HEAD" else b""))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
