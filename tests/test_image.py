"""The container image starts and answers DNS (buildah, chroot isolation, host network on loopback), is at
most 150 MB, holds no shell, package manager or compiler, runs as 65532 and binds port 53 through the
launcher, the only file with cap_net_bind_service; the node-cache variant adds ip and iptables.

With buildah (and root) present, a missing image is built first with `deploy/build-image.sh` (a few
minutes: debootstrap once, then package installs); images already built are reused, so rebuild after
changing the code (or set PYCOREDNS_BUILD_IMAGE=0 to skip instead of building).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from contextlib import contextmanager

import dns.message
import dns.query
import pytest
from conftest import free_port

IMAGE = "localhost/pycoredns:dev"
NODECACHE_IMAGE = "localhost/pycoredns:nodecache"
MAX_SIZE = 150_000_000  # bytes, uncompressed (buildah's "MB" are 10^6 bytes)
LAUNCHER = "opt/pycoredns/bin/pycoredns"
CAP_NET_BIND_SERVICE = 10
ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def _image_present(image: str) -> bool:
    r = subprocess.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True,
                       env=ENV, timeout=60)
    return image in r.stdout.split()


def _built(image: str, nodecache: str) -> str:
    if not shutil.which("buildah"):
        pytest.skip("buildah is not installed (apt-get install buildah debootstrap; then deploy/build-image.sh)")
    if os.geteuid() != 0:
        pytest.skip("buildah with chroot isolation needs root here")
    if not _image_present(image):
        if os.environ.get("PYCOREDNS_BUILD_IMAGE") == "0":
            pytest.skip(f"{image} is not built (PYCOREDNS_BUILD_IMAGE=0): deploy/build-image.sh {image} {nodecache}")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(["bash", os.path.join(root, "deploy", "build-image.sh"), image, nodecache], check=True,
                       env=ENV, timeout=1800)
    return image


@pytest.fixture(scope="module")
def image() -> str:
    return _built(IMAGE, "0")


@pytest.fixture(scope="module")
def nodecache_image() -> str:
    return _built(NODECACHE_IMAGE, "1")


@contextmanager
def _container(image: str):
    ctr = subprocess.run(["buildah", "from", image], capture_output=True, text=True, env=ENV, check=True,
                         timeout=300).stdout.strip()
    try:
        yield ctr
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, env=ENV, timeout=120)


@contextmanager
def _mounted(image: str):
    with _container(image) as ctr:
        mnt = subprocess.run(["buildah", "mount", ctr], capture_output=True, text=True, env=ENV, check=True,
                             timeout=120).stdout.strip()
        try:
            yield mnt
        finally:
            subprocess.run(["buildah", "umount", ctr], capture_output=True, env=ENV, timeout=120)


def _size_bytes(image: str) -> float:
    out = json.loads(subprocess.run(["buildah", "images", "--json", image], capture_output=True, text=True,
                                    env=ENV, check=True, timeout=60).stdout)
    number, unit = re.fullmatch(r"([\d.]+)\s*(\w+)", out[0]["size"]).groups()
    return float(number) * {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def _capabilities(path: str) -> tuple[int, int, bool] | None:
    """(permitted, inheritable, effective) of a file's security.capability, None without one."""
    try:
        raw = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None
    magic, permitted, inheritable = struct.unpack("<3I", raw[:12])
    return permitted, inheritable, bool(magic & 1)


def _bytecode_current(src: str) -> bool:
    """The module's pyc exists and Python will use it: hash-based, or matching the source's mtime and size."""
    d, f = os.path.split(src)
    try:
        with open(os.path.join(d, "__pycache__", f[:-3] + ".cpython-311.pyc"), "rb") as pyc:
            flags, mtime, size = struct.unpack("<3I", pyc.read(16)[4:16])
    except OSError:
        return False
    st = os.stat(src)
    return bool(flags & 1) or (mtime, size) == (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def test_image_is_small_and_holds_only_the_runtime(image: str) -> None:
    assert _size_bytes(image) <= MAX_SIZE
    with _mounted(image) as root:
        assert _capabilities(os.path.join(root, LAUNCHER)) == (1 << CAP_NET_BIND_SERVICE,) * 2 + (True,)
        carrying = [os.path.join(d, f)[len(root):] for d, _, files in os.walk(root) for f in files
                    if _capabilities(os.path.join(d, f))]
        assert carrying == ["/" + LAUNCHER]  # the interpreter itself has no capability
        for absent in ("bin/sh", "usr/bin/bash", "usr/bin/apt-get", "usr/bin/dpkg", "usr/bin/gcc", "usr/bin/cc",
                       "usr/sbin/iptables", "usr/bin/ip", "opt/pycoredns/bin/pip"):
            assert not os.path.lexists(os.path.join(root, absent)), absent
        site = next(os.path.join(d) for d, dirs, _ in os.walk(os.path.join(root, "opt/pycoredns/lib"))
                    if "pycoredns" in dirs)
        sources = [os.path.join(site, "pycoredns", f) for f in os.listdir(os.path.join(site, "pycoredns"))
                   if f.endswith(".py")]
        sources += [os.path.join(root, "usr/lib/python3.11", f) for f in ("socket.py", "json/decoder.py")]
        stale = [src for src in sources if not _bytecode_current(src)]
        assert len(sources) > 20 and not stale, stale  # compiled at build time, and still valid
    config = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", image], capture_output=True,
                                       text=True, env=ENV, check=True, timeout=60).stdout)
    assert config["OCIv1"]["config"]["User"] == "65532:65532"


def test_launcher_binds_port_53_as_nonroot_and_the_interpreter_cannot(image: str) -> None:
    """The capability reaches pycoredns through the launcher only (ambient set), never plain python."""
    host = "127.53.0.1"
    with _container(image) as ctr:
        probe = subprocess.run(
            ["buildah", "run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--",
             "/opt/pycoredns/bin/python", "-c",
             f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{host}', 53))"],
            capture_output=True, text=True, env=ENV, timeout=120)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
        proc = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--",
             "pycoredns", "-conf", "stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            proc.stdin.write(f".:53 {{\n    bind {host}\n    whoami\n}}\n")
            proc.stdin.close()
            reply = _query_until_up(proc, host, 53)
            assert reply.rcode() == 0 and reply.additional  # whoami answered from port 53
        finally:
            _stop(proc)


def test_nodecache_variant_has_ip_and_iptables(nodecache_image: str) -> None:
    assert _size_bytes(nodecache_image) <= MAX_SIZE
    with _container(nodecache_image) as ctr:
        for cmd in (["iptables", "--version"], ["ip6tables", "--version"], ["ip", "-V"]):
            r = subprocess.run(["buildah", "run", "--isolation", "chroot", ctr, "--", *cmd], capture_output=True,
                               text=True, env=ENV, timeout=120)
            assert r.returncode == 0, (cmd, r.stderr)


def _query_until_up(proc: subprocess.Popen, host: str, port: int) -> dns.message.Message:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return dns.query.udp(dns.message.make_query("example.org", "A"), host, port=port, timeout=1)
        except Exception:
            if proc.poll() is not None:
                pytest.fail(f"container exited: {proc.stderr.read()}")
            time.sleep(0.5)
    pytest.fail("no answer within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_container_answers_queries(image: str) -> None:
    port = free_port()
    corefile = f".:{port} {{\n    whoami\n    log\n}}\n"
    with _container(image) as ctr:
        # The image's entrypoint and user; Corefile passed on stdin (`-conf stdin`), host network.
        proc = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--",
             "pycoredns", "-conf", "stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            proc.stdin.write(corefile)
            proc.stdin.close()
            reply = _query_until_up(proc, "127.0.0.1", port)
            assert reply is not None and reply.rcode() == 0
            assert any("127.0.0.1" in rr.to_text() for rr in reply.additional)
        finally:
            _stop(proc)
