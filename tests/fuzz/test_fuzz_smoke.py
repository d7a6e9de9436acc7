"""Short bounded runs of each fuzz target (CI); long runs are documented in README.md (Reliability)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[fuzz]')")

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(("target", "runs"), [("packet.py", 3000), ("corefile.py", 1000)])
def test_fuzz_target_runs_clean(tmp_path: Path, target: str, runs: int) -> None:
    proc = subprocess.run([sys.executable, str(HERE / target), f"-runs={runs}", f"-artifact_prefix={tmp_path}/",
                           str(tmp_path)], capture_output=True, timeout=240)
    out = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    assert proc.returncode == 0 and f"Done {runs} runs" in out, out[-4000:]
    assert not list(tmp_path.glob("crash-*"))
