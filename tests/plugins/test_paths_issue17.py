"""The handler contract for the issue-17 plugins (pycoredns.testing): the fast path, the PENDING path
(the chain below completes by continuation) and serve_dns give the same reply, rcode and error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycoredns.plugins.bufsize.handler import Bufsize
from pycoredns.plugins.file.handler import File, ZoneSlot
from pycoredns.plugins.file.zone import Zone
from pycoredns.plugins.header.handler import Header, Rule
from pycoredns.plugins.local.handler import Local
from pycoredns.plugins.metadata.handler import Metadata
from pycoredns.plugins.nsid.handler import Nsid
from pycoredns.plugins.view.handler import View

from pycoredns import wire
from pycoredns.plugin import PluginError
from pycoredns.testing import Fails, Later, Static, answer_a, chain, make_request, run_both
from pycoredns.util import Fallthrough

ZONE = "$ORIGIN example.org.\n@ 300 IN SOA ns admin 1 2 3 4 5\n@ 300 IN NS ns\nns 300 IN A 192.0.2.53\n"


def _file(tmp: Path) -> File:
    (tmp / "db").write_text(ZONE)
    slot = ZoneSlot("example.org.", str(tmp / "db"))
    slot.zone = Zone.load("example.org.", slot.path)
    return File({"example.org.": slot}, Fallthrough(["example.org."]))


PLUGINS = {
    "nsid": lambda _t: Nsid("replica"),
    "header": lambda _t: Header([Rule(wire.RD, False)], [Rule(wire.RA, True)]),
    "bufsize": lambda _t: Bufsize(1232),
    "metadata": lambda _t: Metadata(["."]),
    "view": lambda _t: View("v", []),
    "local": lambda _t: Local(),
    "file": _file,
}
BELOW = {
    "sync": lambda: Static(answer_a("192.0.2.1")),
    "pending": lambda: Later(answer_a("192.0.2.1")),
    "sync-error": lambda: Fails(wire.SERVFAIL, "upstream down"),
    "pending-error": lambda: Later(None, error=PluginError(wire.SERVFAIL, "upstream down")),
}


@pytest.mark.parametrize("below", sorted(BELOW))
@pytest.mark.parametrize("plugin", sorted(PLUGINS))
async def test_paths_agree(plugin: str, below: str, tmp_path: Path) -> None:
    for name, qtype in (("q.example.org.", "A"), ("ns.example.org.", "A"), ("localhost.", "A")):
        req = make_request(name, qtype, bufsize=4096)
        result = await run_both(lambda: chain(PLUGINS[plugin](tmp_path), BELOW[below]()), req)
        answered_here = (plugin == "local" and name == "localhost.") or (plugin == "file" and name == "ns.example.org.")
        if answered_here:
            assert result.rcode == wire.NOERROR and result.error is None
        elif below.endswith("error"):
            assert result.rcode == wire.SERVFAIL and str(result.error) == "upstream down"
        else:
            assert result.rcode == wire.NOERROR and result.message.rr[0].rdata is not None
