"""A `-lastgood` store on a full or a read-only file system: one error line, DNS keeps serving.

The file systems are small tmpfs mounts (root only; skipped otherwise). An unwritable store whose
directory does not exist is tests/test_lastgood.py::test_unwritable_store_keeps_serving.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.rcode
import pytest
from conftest import query
from reload_helpers import serve_file, write


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> None:
    """Write until the file system is full (bounded by its size)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(1024):
            os.write(fd, b"\0" * 4096)
    except OSError:
        return
    finally:
        os.close(fd)
    raise AssertionError("the tmpfs did not fill up")


@pytest.mark.parametrize("kind", ["full", "read-only"])
async def test_store_that_cannot_be_written_keeps_dns_serving(tmp_path: Path, logs, kind: str) -> None:
    options = "size=64k" if kind == "full" else "ro,size=64k"
    with tmpfs(tmp_path / "store", options) as directory:
        if kind == "full":
            fill(directory)
        store = str(directory / "lastgood.json")
        conf = str(tmp_path / "Corefile")
        write(conf, ". {\n chaos v1\n}\n")
        async with serve_file(conf, lastgood=store) as srv:
            r = await query(srv.port(), "version.bind", "TXT", rdclass="CH")
            assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == '"v1"'
        assert logs.has(f"[ERROR] Could not save the last known good configuration to {store}: ")
        assert not os.path.exists(store)
        assert not [p for p in os.listdir(directory) if p != "filler"]  # no temporary file left behind
