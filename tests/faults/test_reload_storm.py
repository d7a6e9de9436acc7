"""A reload storm: the Corefile rewritten 100 times in a few seconds, each time with a reload request.

A prober queries all along and loses nothing; the last version wins; no reload fails.
"""

from __future__ import annotations

import trio
from reload_helpers import Prober, serve_file, write


async def test_hundred_rewrites_with_reload_requests_lose_nothing(tmp_path, logs) -> None:
    conf = str(tmp_path / "Corefile")
    write(conf, ". {\n chaos v0\n}\n")
    async with serve_file(conf) as srv:
        prober = Prober(srv.port())
        async with trio.open_nursery() as n:
            await n.start(prober.run)
            for i in range(1, 101):
                write(conf, f". {{\n chaos v{i}\n}}\n")
                srv.request_reload()
                await trio.sleep(0.03)
            with trio.move_on_after(15):  # the storm settles: the last version serves
                while prober.answers[-1] != '"v100"':
                    await trio.sleep(0.05)
            prober.stop.set()
        assert prober.lost == 0 and prober.answered == prober.sent, prober
        assert prober.answers[-1] == '"v100"', prober
        versions = [int(a.strip('"v')) for a in prober.answers]
        assert versions == sorted(versions), prober  # never an older configuration after a newer one
        assert not logs.has("[ERROR] Restart failed")
        assert logs.lines.count("[INFO] Reloading complete") >= 1
