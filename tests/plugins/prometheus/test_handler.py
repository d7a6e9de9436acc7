"""prometheus plugin: scrape /metrics over HTTP and check names, labels and counts against queries sent
(moved from tests/test_prometheus.py)."""

from __future__ import annotations

import dns.rcode
import pytest
from conftest import free_port, query, running
from prom_helpers import samples, scrape, value

from pycoredns.metrics import DURATION_BUCKETS


async def test_counts_labels_and_format(tmp_path):
    port = free_port()
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 web.hosts.prom.test\n")
    cf = (f"prom.test {{\n prometheus 127.0.0.1:{port}\n errors\n log\n whoami\n}}\n"
          f"hosts.prom.test {{\n prometheus 127.0.0.1:{port}\n loadbalance\n hosts {hosts}\n}}\n")
    async with running(cf) as srv:
        server = srv.instance.first_listener().label
        for _ in range(3):
            assert (await query(srv.port(), "a.prom.test", "A")).rcode() == dns.rcode.NOERROR
        for _ in range(2):
            await query(srv.port(), "a.prom.test", "AAAA", tcp=True)
        await query(srv.port(), "a.prom.test", "SRV", want_dnssec=True)
        await query(srv.port(), "web.hosts.prom.test", "A")
        await query(srv.port(), "web.hosts.prom.test", "TYPE65280")
        assert (await query(srv.port(), "nope.hosts.prom.test", "A")).rcode() == dns.rcode.SERVFAIL
        status, ctype, body = await scrape(port)
        assert status == 200
        assert ctype.startswith("text/plain; version=0.0.4")
        s = samples(body)

        z = dict(server=server, zone="prom.test.", view="")
        assert value(s, "coredns_dns_requests_total", **z, proto="udp", family="1", type="A") == 3
        assert value(s, "coredns_dns_requests_total", **z, proto="tcp", family="1", type="AAAA") == 2
        assert value(s, "coredns_dns_requests_total", **z, proto="udp", family="1", type="SRV") == 1
        assert value(s, "coredns_dns_do_requests_total", **z) == 1
        # CoreDNS labels a written reply with the plugin right after prometheus (errors), not whoami
        assert value(s, "coredns_dns_responses_total", **z, rcode="NOERROR", plugin="errors") == 6
        assert value(s, "coredns_dns_request_duration_seconds_count", **z) == 6
        assert value(s, "coredns_dns_request_size_bytes_count", **z, proto="udp") == 4
        assert value(s, "coredns_dns_response_size_bytes_count", **z, proto="tcp") == 2
        # whoami replies are over 0 and under 511 bytes: every one lands in the le=511 bucket, none in le=0
        assert value(s, "coredns_dns_response_size_bytes_bucket", **z, proto="udp", le="511") == 4
        assert value(s, "coredns_dns_response_size_bytes_bucket", **z, proto="udp", le="0") == 0
        assert value(s, "coredns_dns_request_duration_seconds_bucket", **z, le="+Inf") == 6
        les = {dict(k[1])["le"] for k in s if k[0] == "coredns_dns_request_duration_seconds_bucket"}
        assert {float(x) for x in les - {"+Inf"}} == set(DURATION_BUCKETS)

        h = dict(server=server, zone="hosts.prom.test.", view="")
        assert value(s, "coredns_dns_requests_total", **h, proto="udp", family="1", type="other") == 1
        # labelled loadbalance (right after prometheus); SERVFAIL is written by the server: plugin=""
        assert value(s, "coredns_dns_responses_total", **h, rcode="NOERROR", plugin="loadbalance") == 2
        assert value(s, "coredns_dns_responses_total", **h, rcode="SERVFAIL", plugin="") == 1

        for name in ("prometheus", "errors", "log", "whoami"):
            assert value(s, "coredns_plugin_enabled", server=server, zone="prom.test.", view="", name=name) == 1
        for name in ("prometheus", "loadbalance", "hosts"):
            assert value(s, "coredns_plugin_enabled", server=server, zone="hosts.prom.test.", view="",
                         name=name) == 1
        assert not value(s, "coredns_plugin_enabled", server=server, zone="prom.test.", view="", name="hosts")
        builds = [k for k in s if k[0] == "coredns_build_info"]
        assert len(builds) == 1 and {n for n, _ in builds[0][1]} == {"version", "revision", "goversion"}
        assert value(s, "process_resident_memory_bytes") > 1e6
        assert value(s, "process_open_fds") > 3
        assert value(s, "process_cpu_seconds_total") > 0
        assert value(s, "process_start_time_seconds") > 1e9
        assert "# TYPE process_cpu_seconds_total counter" in body
        assert "# TYPE coredns_dns_request_duration_seconds histogram" in body

        # a query for no zone: counted by the server as dropped, not by the plugin
        before = value(s, "coredns_dns_requests_total", server=server, zone="dropped", view="", proto="udp",
                       family="1", type="A")
        assert (await query(srv.port(), "example.com", "A")).rcode() == dns.rcode.REFUSED
        s2 = samples((await scrape(port))[2])
        assert value(s2, "coredns_dns_requests_total", server=server, zone="dropped", view="", proto="udp",
                     family="1", type="A") == before + 1
        assert value(s2, "coredns_dns_requests_total", **z, proto="udp", family="1", type="A") == 3
        assert (await scrape(port, "/other"))[0] == 404


async def test_format_parses_with_prometheus_client():
    parser = pytest.importorskip("prometheus_client.parser")
    port = free_port()
    async with running(f"fmt.prom.test {{\n prometheus 127.0.0.1:{port}\n whoami\n}}\n") as srv:
        await query(srv.port(), "x.fmt.prom.test", "A")
        _, _, body = await scrape(port)
    families = {f.name: f for f in parser.text_string_to_metric_families(body)}
    assert families["coredns_dns_requests"].type == "counter"
    assert families["coredns_dns_request_duration_seconds"].type == "histogram"
    assert families["coredns_plugin_enabled"].type == "gauge"
    total = sum(s.value for s in families["coredns_dns_requests"].samples
                if s.labels.get("zone") == "fmt.prom.test." and s.name == "coredns_dns_requests_total")
    assert total == 1


async def test_reload_keeps_endpoint_and_counts():
    port = free_port()
    async with running(f"reload.prom.test {{\n prometheus 127.0.0.1:{port}\n whoami\n}}\n") as srv:
        server = srv.instance.first_listener().label
        z = dict(server=server, zone="reload.prom.test.", view="", proto="udp", family="1", type="A")
        await query(srv.port(), "x.reload.prom.test", "A")
        assert await srv.reload()
        await query(srv.port(), "x.reload.prom.test", "A")
        s = samples((await scrape(port))[2])
        assert value(s, "coredns_dns_requests_total", **z) == 2
        assert value(s, "coredns_plugin_enabled", server=server, zone="reload.prom.test.", view="",
                     name="whoami") == 1


async def test_failing_collector_gives_500_and_server_keeps_serving():
    from pycoredns.metrics import REGISTRY

    def broken():
        raise RuntimeError("collector exploded")

    port = free_port()
    async with running(f"bad.prom.test {{\n prometheus 127.0.0.1:{port}\n whoami\n}}\n") as srv:
        REGISTRY.gauge_func("test_broken_gauge", "A collector that fails.", broken)
        try:
            status, _, body = await scrape(port)
            assert status == 500 and "collector exploded" in body
        finally:
            REGISTRY.metrics.pop("test_broken_gauge")
        assert (await scrape(port))[0] == 200
        assert (await query(srv.port(), "x.bad.prom.test", "A")).rcode() == dns.rcode.NOERROR


async def test_duration_sums_follow_each_zone_of_a_block():
    """The duration sum runs per (listener, zone) and is parked when queries alternate between a block's
    zones: each zone's request_duration count and sum grow with its own queries, across scrapes."""
    port = free_port()
    cf = f"one.dur.test two.dur.test {{\n prometheus 127.0.0.1:{port}\n whoami\n}}\n"
    async with running(cf) as srv:
        server = srv.instance.first_listener().label

        def dur(s: dict, zone: str, what: str) -> float:
            return value(s, f"coredns_dns_request_duration_seconds_{what}", server=server, zone=zone, view="")

        for name in ("a.one.dur.test", "a.two.dur.test", "b.two.dur.test", "b.one.dur.test", "c.one.dur.test"):
            assert (await query(srv.port(), name, "A")).rcode() == dns.rcode.NOERROR
        s = samples((await scrape(port))[2])
        assert dur(s, "one.dur.test.", "count") == 3 and dur(s, "two.dur.test.", "count") == 2
        first = {z: dur(s, z, "sum") for z in ("one.dur.test.", "two.dur.test.")}
        assert all(v > 0 for v in first.values())
        assert (await query(srv.port(), "d.two.dur.test", "A")).rcode() == dns.rcode.NOERROR
        s = samples((await scrape(port))[2])
        assert dur(s, "one.dur.test.", "count") == 3 and dur(s, "two.dur.test.", "count") == 3
        assert dur(s, "one.dur.test.", "sum") == first["one.dur.test."]
        assert dur(s, "two.dur.test.", "sum") > first["two.dur.test."]


async def test_pending_observations_fold_when_the_configuration_stops():
    """Observations not folded yet refer to their configuration's handler: its stop (a reload, a
    shutdown) folds them, so they do not keep the old chain alive, and the counts are kept."""
    import importlib

    from pycoredns.metrics import REGISTRY

    prom = importlib.import_module("pycoredns.plugins.prometheus.handler")
    async with running("stop.prom.test {\n prometheus 127.0.0.1:0\n whoami\n}\n") as srv:
        handler = srv.instance.blocks[0].handlers[0]
        server = srv.instance.first_listener().label
        for _ in range(3):
            assert (await query(srv.port(), "a.stop.prom.test", "A")).rcode() == dns.rcode.NOERROR
        assert any(k[0] is handler for k in [*prom._OBS, *prom._COUNTS])
    assert not any(k[0] is handler for k in [*prom._OBS, *prom._COUNTS])
    s = samples(REGISTRY.expose())
    assert value(s, "coredns_dns_requests_total", server=server, zone="stop.prom.test.", view="", proto="udp",
                 family="1", type="A") == 3
