"""An upstream that goes silent: forward times out with SERVFAIL, serve_stale keeps cached names up.

Garbage, truncated, oversized and mismatched upstream replies are covered where forward and the
packet path are tested: tests/test_forward.py (test_bad_upstream_replies,
test_truncated_udp_reply_passed_through, test_oversized_udp_reply_becomes_empty_tc,
test_mismatched_id_ignored_then_right_reply_used) and tests/test_robustness_packets.py
(test_damaged_upstream_replies_through_cache_loadbalance_rewrite_minimal).
"""

from __future__ import annotations

import dns.rcode
import trio
from conftest import free_port, query, running
from upstream import GarbageUpstream

from .helpers import metric


async def test_blackholed_upstream_serve_stale_answers_from_the_cache(logs) -> None:
    mport = free_port()
    with GarbageUpstream("ok") as up:
        corefile = (f". {{\n errors\n prometheus 127.0.0.1:{mport}\n"
                    f" cache 1 {{\n  serve_stale 1h\n }}\n forward . {up.addr} {{\n  max_fails 0\n }}\n}}\n")
        async with running(corefile) as srv:
            r = await query(srv.port(), "cached.example.", "A")
            assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.99"
            up.mode = lambda q: []  # the upstream now reads every query and answers none
            await trio.sleep(1.5)  # the cached answer (TTL capped at 1 s) is now stale
            for _ in range(3):
                r = await query(srv.port(), "cached.example.", "A")
                assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.99"
            assert await metric(mport, "coredns_cache_served_stale_total") >= 3
            r = await query(srv.port(), "never-cached.example.", "A", timeout=10)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert logs.has("[ERROR] plugin/errors: 2 never-cached.example. A: ")
            assert await metric(mport, "coredns_panics_total") == 0
