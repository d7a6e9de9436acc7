"""Broken Corefiles: a one-line `plugin/<name>: ...` (or parser `FILE:LINE - ...`) error, never a traceback.

The per-plugin rows live in tests/plugins/<name>/test_setup.py (BROKEN, MUST_FAIL, EXACT; checked with
tests/broken_corefiles.py). This file keeps what is not one plugin's: every directive must have rows
(or take no arguments), directives without their own file still get the generic arguments, listen
failures at startup, key ports, and the real CLI's exit status 1 with a clean stderr.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from broken_corefiles import LEAK, block, check_broken
from conftest import running

from pycoredns import directives
from pycoredns.instance import StartupError

PLUGIN_TESTS = Path(__file__).resolve().parent / "plugins"
ARGLESS = {"any", "debug", "loop", "minimal", "whoami"}


def implemented() -> list[str]:
    """The shipped plugins (other tests register throw-away directives in the same process)."""
    return [d for d in directives.directives() if d in directives.BUILTIN]


def broken_rows(directive: str) -> int | None:
    """How many BROKEN rows tests/plugins/<directive>/test_setup.py has (read, not imported), or None."""
    path = PLUGIN_TESTS / directive / "test_setup.py"
    if not path.exists():
        return None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "BROKEN" and node.value is not None:
            return len(node.value.elts) if isinstance(node.value, ast.List) else 0
    return None


def test_every_implemented_directive_has_specific_cases_or_is_argless():
    """New directives must get BROKEN rows in tests/plugins/<name>/test_setup.py (or take no arguments)."""
    missing = [d for d in implemented() if not broken_rows(d) and d not in ARGLESS]
    assert not missing, f"add broken-Corefile cases for: {missing}"


@pytest.mark.parametrize("directive", [d for d in implemented() if broken_rows(d) is None])
def test_generic_variants_of_directives_without_rows(directive: str):
    """Directives whose tests/plugins/<name>/test_setup.py has no BROKEN still get the generic arguments."""
    check_broken(directive, [])


# Errors that only show when the server starts (listening).
@pytest.mark.parametrize(
    "body,name",
    [
        (" health 192.0.2.1:0", "health"),
        (" ready 192.0.2.1:0", "ready"),
        (" prometheus 192.0.2.1:0", "prometheus"),
        (" bind 192.0.2.1", "bind"),
    ],
)
async def test_listen_failures_are_one_line(body: str, name: str):
    with pytest.raises(StartupError) as ei:
        async with running(block(body + "\n whoami")):
            pass
    msg = str(ei.value)
    assert "\n" not in msg and not LEAK.search(msg), msg
    assert "192.0.2.1" in msg or msg.startswith("listen: "), msg


@pytest.mark.parametrize("key", [".:99999", ".:-1"])
async def test_key_port_out_of_range(key: str):
    """No range check on keys (as CoreDNS); binding fails with one clean line."""
    with pytest.raises(StartupError) as ei:
        async with running(f"{key} {{\n whoami\n}}\n"):
            pass
    assert str(ei.value) == f"listen: address {key[2:]}: invalid port"


def _cli(tmp_path, text: str | bytes) -> subprocess.CompletedProcess:
    f = tmp_path / "Corefile"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    return subprocess.run(
        [sys.executable, "-m", "pycoredns", "-conf", str(f), "-dns.port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "text,prefix",
    [
        (block(" cache 0"), "plugin/cache: "),
        (block(" rewrite name regex ( x"), "plugin/rewrite: "),
        (block(' reload ""'), "plugin/reload: "),
        (block(" hosts /tmp/\x00x"), "plugin/hosts: "),
        (b". {\n whoami \xff\xfe\n}\n", ""),
        (block(' template IN A {\n  answer "{{ .Bad "\n }'), "plugin/template: "),
    ],
)
def test_cli_exits_1_with_one_line(tmp_path, text, prefix: str):
    r = _cli(tmp_path, text)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert prefix in lines[0], lines
