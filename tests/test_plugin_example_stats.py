"""examples/plugin_example's `stats`: the setup context (route, config state, startup hook, handler lookup,
listen addresses, spawn) in a real server, DNS and HTTP over loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import free_port, http_get, query, running

from pycoredns import directives

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "plugin_example"))

from pycoredns_plugin_example import hello, stats

directives.register("stats", stats, after=stats.AFTER)
directives.register("hello", hello, after="stats")  # its own AFTER names `slow`, not registered here


async def test_stats_counts_queries_and_serves_them() -> None:
    port = free_port()
    corefile = (f"a.test {{\n bind 127.0.0.1\n stats 127.0.0.1:{port}\n hello\n whoami\n}}\n"
                f"b.test {{\n bind 127.0.0.2\n stats 127.0.0.1:{port}\n whoami\n}}\n")
    async with running(corefile) as srv:
        a_port = srv.port()  # the first listener: block a's on 127.0.0.1
        assert (await query(a_port, "x.a.test", "A")).rcode() == 0
        assert (await query(a_port, "x.a.test", "A")).rcode() == 0
        b_port = next(lst.bound_port for lst in srv.instance.listeners.values() if lst.host == "127.0.0.2")
        assert (await query(b_port, "y.b.test", "A", host="127.0.0.2")).rcode() == 0
        status, ctype, body = await http_get(port, "/stats")
        assert status == 200 and ctype == "application/json"
        doc = json.loads(body)
        assert doc["counts"] == {"x.a.test.": 2, "y.b.test.": 1}  # one table for both blocks
        # each block's startup hook saw its own listener and whether `hello` is in its chain
        assert doc["neighbours"] == {f"127.0.0.1:{a_port}": True, f"127.0.0.2:{b_port}": False}
