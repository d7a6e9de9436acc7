"""A scriptable DNS-over-HTTPS upstream for forward's DoH tests: HTTP/2 over TLS on 127.0.0.1.

unbound (tests/upstream.py, `Unbound(https=True)`) is the real DoH upstream; this one exists for what a
well-behaved server never does (other statuses and content types, garbage bodies, silence, GOAWAY)
and to see the requests forward sends.

    with DohServer(lambda req: (200, MIME, reply_for(req.query))) as s:
        corefile = f"forward . https://{s.addr} {{\\n tls {s.cert_file}\\n}}"

The respond callback gets a `DohRequest` and returns (status, content type, body), or None to stay
silent. Every connection is served by a thread with bounded timeouts; `stop()` ends them all.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from pycoredns_conformance.upstream import SyncAsync, make_tls_cert

MIME = "application/dns-message"


@dataclass
class DohRequest:
    method: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def query(self) -> bytes:
        """The DNS query: the POST body, or the GET `dns` parameter decoded (base64url, padding optional)."""
        if self.method == "GET":
            b64 = self.path.partition("?dns=")[2]
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        return self.body


Respond = Callable[[DohRequest], "tuple[int, str, bytes] | None"]


class DohServer(SyncAsync):
    """HTTP/2 over TLS (ALPN h2) on 127.0.0.1:`port`; `requests` records what came in.

    `goaway_first`: the first request of the first connection gets a GOAWAY (last stream 0) and the
    connection closes, unanswered (a client must resend it elsewhere)."""

    def __init__(self, respond: Respond, *, goaway_first: bool = False) -> None:
        self.respond = respond
        self.goaway_first = goaway_first
        self.requests: list[DohRequest] = []
        self.connections = 0
        self.peers: list[tuple[str, int]] = []  # the clients' addresses, one per connection
        self.dir = tempfile.mkdtemp(prefix="doh-test-")
        self.cert_file, self.key_file = make_tls_cert(self.dir)
        self.port = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DohServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.set_alpn_protocols(["h2"])
        self._ctx = ctx
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(64)
        lst.settimeout(0.05)
        self._listener, self.port = lst, lst.getsockname()[1]
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(5)
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(self, fn: Callable, *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append(peer)
            self.connections += 1
            self._spawn(self._serve, sock, self.connections == 1)

    def _serve(self, raw: socket.socket, first: bool) -> None:
        try:
            raw.settimeout(2)
            sock = self._ctx.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.05)
        reqs: dict[int, DohRequest] = {}
        bodies: dict[int, bytes] = {}  # response bodies waiting for the client's flow-control window
        with contextlib.closing(sock):
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        hdrs = dict(ev.headers)
                        reqs[ev.stream_id] = DohRequest(hdrs.pop(":method"), hdrs.pop(":path"), hdrs)
                    elif isinstance(ev, h2.events.DataReceived):
                        reqs[ev.stream_id].body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        req = reqs.pop(ev.stream_id)
                        self.requests.append(req)
                        if first and self.goaway_first:
                            conn.close_connection(last_stream_id=0)
                            sock.sendall(conn.data_to_send())
                            return
                        answer = self.respond(req)
                        if answer is not None:
                            status, ctype, body = answer
                            conn.send_headers(ev.stream_id, [(":status", str(status)), ("content-type", ctype),
                                                             ("content-length", str(len(body)))])
                            bodies[ev.stream_id] = body
                    elif isinstance(ev, h2.events.StreamReset):
                        bodies.pop(ev.stream_id, None)
                for sid in list(bodies):
                    bodies[sid] = self._send_body(conn, sid, bodies[sid])
                    if not bodies[sid]:
                        del bodies[sid]
                try:
                    sock.sendall(conn.data_to_send())
                except OSError:
                    return

    @staticmethod
    def _send_body(conn: h2.connection.H2Connection, sid: int, body: bytes) -> bytes:
        """As much of `body` as the client's windows take now (all of it ends the stream); the rest."""
        while True:
            n = min(len(body), conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if n == 0 and body:
                return body
            chunk, body = body[:n], body[n:]
            conn.send_data(sid, chunk, end_stream=not body)
            if not body:
                return b""
