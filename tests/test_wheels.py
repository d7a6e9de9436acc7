"""The two distributions work from their built wheels, outside the checkout (README's install story).

Builds `pycoredns` and `pycoredns-conformance` with `pip wheel` from a copy of the sources, installs
both into a fresh venv in a temporary directory, and from there runs the demo, the conformance
suite's spec area with `--binary` against the installed `pycoredns` script, and the Kubernetes API
test server. The venv has no access to the checkout: its dependencies (trio, dnslib, ...) come from
their installed directories through a `.pth` path list, which adds those directories to `sys.path`
without running the `.pth` hooks of the editable development install (they would map `pycoredns`
back to the checkout). The test then proves the imported modules are the venv's copies.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest
from conftest import ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "setup.py", "README.md", "pycoredns", "plugins", "conformance"]
# Imported by the installed distributions: their directories go on the venv's sys.path.
DEPENDENCIES = ["trio", "dnslib", "kubernetes_asyncio", "aiohttp", "lark", "yaml", "dns"]
IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc")


def _offline_build() -> bool:
    """setuptools can build a wheel here without fetching build requirements (bdist_wheel available)."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    return tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheels")
    src, wheels, env = root / "src", root / "wheels", root / "venv"
    src.mkdir()
    for name in SOURCES:  # a copy: building in the checkout would leave (and later reuse) build/ there
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORE)
        else:
            shutil.copy2(path, src / name)
    isolation = ["--no-build-isolation"] if _offline_build() else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    *isolation, "-w", str(wheels), str(src), str(src / "conformance")],
                   check=True, cwd=root, timeout=300)
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert built == ["pycoredns", "pycoredns_conformance"]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = next(env.glob("lib/python3*/site-packages"))
    dirs = dict.fromkeys(str(Path(importlib.util.find_spec(m).origin).parent.parent) for m in DEPENDENCIES)
    (site / "_dependencies.pth").write_text("".join(f"{d}\n" for d in dirs))
    # --ignore-installed: the development install's metadata is visible on those paths; install anyway.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--disable-pip-version-check", "--no-deps", "--ignore-installed", *wheels.glob("*.whl")],
                   check=True, cwd=root, timeout=300)
    return env


def _run(env: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / "python"), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=env.parent, env=_environ(env))


def _environ(env: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environ["PATH"] = f"{env / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    return environ


def test_the_venv_imports_the_installed_wheels(venv: Path) -> None:
    code = ("import json, pycoredns, pycoredns.demo, pycoredns.plugins.kubernetes, pycoredns_conformance.apiserver;"
            "print(json.dumps([m.__file__ for m in (pycoredns, pycoredns.demo, pycoredns.plugins.kubernetes,"
            " pycoredns_conformance.apiserver)]))")
    r = _run(venv, "-c", code)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)
    assert all(f.startswith(str(venv)) for f in files), files
    assert not any(f.startswith(str(REPO)) for f in files)
    r = _run(venv, "-c", "import conformance")  # the product wheel installs no top-level `conformance`
    assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr
    listed = subprocess.run([str(venv / "bin" / "pycoredns"), "-plugins"], capture_output=True, text=True,
                            timeout=60, cwd=venv.parent, env=_environ(venv))
    assert "dns.kubernetes" in listed.stdout and "dns.whoami" in listed.stdout


def test_demo_from_the_wheels(venv: Path) -> None:
    """README's first command, installed: the packaged Corefile, the API test server, real answers."""
    port = free_port()
    p = ServerProcess(["-dns.port", str(port)], module="pycoredns.demo", python=str(venv / "bin" / "python"),
                      cwd=str(venv.parent), env={"PYTHONPATH": ""})
    try:
        p.wait_for_line("CoreDNS-1.14.7", timeout=60)
        r = dns.query.udp(dns.message.make_query("kube-dns.kube-system.svc.cluster.local", "A"), "127.0.0.1",
                          port=port, timeout=3)
        assert [rr.to_text() for rr in r.answer[0]] == ["10.240.16.10"]
        r = dns.query.udp(dns.message.make_query("example.org", "A"), "127.0.0.1", port=port, timeout=3)
        assert r.additional  # whoami
    finally:
        assert p.stop() == 0


def test_conformance_spec_area_against_the_installed_binary(venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = subprocess.run([str(venv / "bin" / "pycoredns_conformance"), "--binary", str(venv / "bin" / "pycoredns"),
                        "--area", "spec", "-q", "--json", str(out)], capture_output=True, text=True, timeout=180,
                       cwd=venv.parent, env=_environ(venv))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert len(data["results"]) >= 50
    assert {x["status"] for x in data["results"]} == {"pass"}


def test_apiserver_from_the_wheels(venv: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    p = ServerProcess(["--listen", "127.0.0.1:0", "--kubeconfig-out", str(kubeconfig)],
                      module="pycoredns_conformance.apiserver", python=str(venv / "bin" / "python"),
                      cwd=str(venv.parent), env={"PYTHONPATH": ""})
    try:
        url = p.wait_for_line("apiserver listening on", timeout=60).split()[-1]
        p.wait_for_line("kubeconfig written", timeout=30)
        assert url in kubeconfig.read_text()
        with urllib.request.urlopen(f"{url}/api/v1/namespaces/kube-system/services/kube-dns", timeout=10) as resp:
            assert json.load(resp)["spec"]["clusterIP"] == "10.240.16.10"
    finally:
        p.stop()
