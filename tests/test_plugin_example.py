"""examples/plugin_example: a third-party plugin of each handler shape, through both paths."""

from __future__ import annotations

import sys
from pathlib import Path

from pycoredns import wire
from pycoredns.testing import Static, answer_a, chain, make_request, run_both, run_fast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "plugin_example"))

from pycoredns_plugin_example.count import Count
from pycoredns_plugin_example.hello import Hello
from pycoredns_plugin_example.slow import Slow


def example_chain() -> Count:
    c = Count()
    chain(c, Slow(), Hello(), Static(answer_a("192.0.2.9")))
    return c


async def test_each_shape_agrees_on_both_paths() -> None:
    hello = await run_both(example_chain, make_request("hello.test.", "A"))
    assert hello.path == "fast" and str(hello.message.rr[0].rdata) == "192.0.2.1"
    slow = await run_both(example_chain, make_request("x.slow.test.", "A"))
    assert slow.path == "pending" and slow.rcode == wire.NXDOMAIN
    other = await run_both(example_chain, make_request("other.test.", "A"))
    assert str(other.message.rr[0].rdata) == "192.0.2.9"


async def test_count_sees_every_query_once() -> None:
    c = example_chain()
    for name in ("hello.test.", "x.slow.test.", "y.slow.test.", "other.test."):
        await run_fast(c, make_request(name, "A"))
    assert c.seen == {wire.NOERROR: 2, wire.NXDOMAIN: 2}
