"""The container image starts and answers DNS (buildah, chroot isolation, host network on loopback).

Building the image takes minutes (debootstrap plus package installs), so this test uses an image that
`deploy/build-image.sh` already built; set PYCOREDNS_BUILD_IMAGE=1 to build it here first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import dns.message
import dns.query
import pytest
from conftest import free_port

IMAGE = "localhost/pycoredns:dev"
ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def _image_present() -> bool:
    r = subprocess.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True,
                       env=ENV, timeout=60)
    return IMAGE in r.stdout.split()


@pytest.fixture(scope="module")
def image() -> str:
    if not shutil.which("buildah"):
        pytest.skip("buildah is not installed (apt-get install buildah debootstrap; then deploy/build-image.sh)")
    if os.geteuid() != 0:
        pytest.skip("buildah with chroot isolation needs root here")
    if not _image_present():
        if os.environ.get("PYCOREDNS_BUILD_IMAGE") != "1":
            pytest.skip(f"{IMAGE} is not built: run deploy/build-image.sh (or set PYCOREDNS_BUILD_IMAGE=1)")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(["bash", os.path.join(root, "deploy", "build-image.sh"), IMAGE], check=True, env=ENV,
                       timeout=1800)
    return IMAGE


def test_container_answers_queries(image: str, tmp_path) -> None:
    port = free_port()
    ctr = subprocess.run(["buildah", "from", image], capture_output=True, text=True, env=ENV, check=True,
                         timeout=300).stdout.strip()
    corefile = f".:{port} {{\n    whoami\n    log\n}}\n"
    proc = None
    try:
        # The image's entrypoint and user; Corefile passed on stdin (`-conf stdin`), host network.
        proc = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--user", "65532:65532", ctr, "--",
             "pycoredns", "-conf", "stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        proc.stdin.write(corefile)
        proc.stdin.close()
        deadline = time.monotonic() + 60
        reply = None
        while time.monotonic() < deadline and reply is None:
            try:
                reply = dns.query.udp(dns.message.make_query("example.org", "A"), "127.0.0.1", port=port, timeout=1)
            except Exception:
                if proc.poll() is not None:
                    pytest.fail(f"container exited: {proc.stderr.read()}")
                time.sleep(0.5)
        assert reply is not None and reply.rcode() == 0
        assert any("127.0.0.1" in rr.to_text() for rr in reply.additional)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["buildah", "rm", ctr], capture_output=True, env=ENV, timeout=120)
