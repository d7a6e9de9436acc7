"""metadata with log's `{/label}` placeholders (lines observed on CoreDNS 1.14.7)."""

from __future__ import annotations

import logging

import pytest
from conftest import query, running


@pytest.fixture
def lines():
    got: list[str] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    h = H()
    logging.getLogger("pycoredns").addHandler(h)
    yield got
    logging.getLogger("pycoredns").removeHandler(h)


FMT = 'log . "META {/log/type} {/log/class} {/nope/x} {name}"'


async def test_log_metadata_with_plugin(lines) -> None:
    async with running(f". {{\n metadata\n {FMT}\n local\n whoami\n}}\n") as srv:
        await query(srv.port(), "example.org.", "A")
        await query(srv.port(), "x.255.in-addr.arpa.", "A")
        await query(srv.port(), "localhost.", "MX")
    assert [ln for ln in lines if ln.startswith("META")] == [
        "META NOERROR success - example.org.",
        "META NXDOMAIN denial - x.255.in-addr.arpa.",
        "META NODATA denial - localhost.",
    ]


async def test_log_metadata_without_plugin(lines) -> None:
    async with running(f". {{\n {FMT}\n whoami\n}}\n") as srv:
        await query(srv.port(), "example.org.", "A")
    assert [ln for ln in lines if ln.startswith("META")] == ["META - - - example.org."]


async def test_providers_outside_zones_add_nothing() -> None:
    """A provider's labels are collected only for the metadata zones."""
    async with running(". {\n metadata example.org\n whoami\n}\n") as srv:
        h = srv.instance.blocks[0].handlers[0]

        class P:
            def metadata(self, req):
                return {"test/zone": req.name}

        h.providers = [P()]
        seen = []
        orig = h.collect

        def spy(req):
            orig(req)
            seen.append(dict(req.meta))

        h.collect = spy
        await query(srv.port(), "a.example.org.", "A")
        await query(srv.port(), "a.example.net.", "A")
    assert seen == [{"test/zone": "a.example.org."}, {}]
