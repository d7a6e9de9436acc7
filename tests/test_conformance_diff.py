"""The differential mode (`python -m pycoredns_conformance diff`): two servers, the same probes, every
difference. pycoredns against itself must show none; a changed TTL or a different refusal must show."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rrset
from pycoredns_conformance.diff.compare import Options, differences, view
from pycoredns_conformance.diff.probes import corefile_zones, malformed, random_names

REPO = Path(__file__).resolve().parent.parent
PYCOREDNS = f"{sys.executable} -m pycoredns"


def diff(tmp_path: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "diff.json"
    cmd = [sys.executable, "-m", "pycoredns_conformance", "diff", "-q", "--json", str(out), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_pycoredns_against_itself_has_no_differences(tmp_path: Path) -> None:
    """The fixture mode over kubeadm's Corefile: suite queries, generated probes, malformed packets."""
    proc, data = diff(tmp_path, "--binary", PYCOREDNS, "--reference", PYCOREDNS, "--corefile", "kubeadm",
                      "--queries", "300")
    s = data["summary"]
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert s["differences"] == 0 and s["unexplained"] == 0
    assert s["probes"] > 600  # suite cases + systematic + generated + malformed
    assert data["corefiles"][0]["status"] == "served"
    assert "0 differences (0 unexplained)" in proc.stdout


def test_a_changed_ttl_and_a_different_refusal_are_found(tmp_path: Path) -> None:
    """The reference is pycoredns behind a wrapper that lowers the kubernetes TTL and breaks one Corefile:
    the Corefile mode must report the TTL of every answer and the refusal message."""
    wrapper = tmp_path / "other-release"
    wrapper.write_text("#!/bin/sh\n"
                       'sed -i -e "s/ttl 30/ttl 7/" -e "s/^ *unknowndirective/    whoami/" "$2"\n'
                       f'exec {PYCOREDNS} -conf "$2"\n')
    wrapper.chmod(0o755)
    d = tmp_path / "corefiles"
    d.mkdir()
    (d / "ttl").write_text(".:@PORT@ {\n    kubernetes cluster.local {\n        kubeconfig @KUBECONFIG@\n"
                           "        ttl 30\n    }\n}\n")
    (d / "refused").write_text(".:@PORT@ {\n    unknowndirective\n}\n")
    (d / "same").write_text(".:@PORT@ {\n    whoami\n    nosuchplugin\n}\n")
    proc, data = diff(tmp_path, "--binary", PYCOREDNS, "--reference", str(wrapper), "--corefiles", str(d))
    assert proc.returncode == 1, proc.stdout[-3000:]
    by_file = {c["name"]: c for c in data["corefiles"]}
    assert by_file["ttl"]["status"] == "served" and by_file["ttl"]["differences"] > 0
    assert by_file["same"]["status"] == "refused" and by_file["same"]["differences"] == 0
    assert "Unknown directive 'nosuchplugin'" in by_file["same"]["sides"]["binary"]["message"]
    assert "@CONF@:3" in by_file["same"]["sides"]["binary"]["message"]  # file:line, paths made comparable
    assert by_file["refused"]["status"] == "start-differs"
    ttl = [d for d in data["differences"] if d["corefile"] == "ttl"]
    assert ttl and {d["field"].split(".")[0] for d in ttl} <= {"answer", "authority", "additional"}
    assert any(d["field"] == "answer.ttl" and "ttl=30" in d["a"] and "ttl=7" in d["b"] for d in ttl)


def _reply(*rrs: str, rcode: int = 0, qid: int = 1) -> bytes:
    m = dns.message.make_response(dns.message.make_query("a.example.", "A", id=qid))
    m.set_rcode(rcode)
    for text in rrs:
        name, ttl, rtype, rdata = text.split(" ", 3)
        m.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, rdata))
    return m.to_wire()


def test_comparison_rules() -> None:
    """Sections are multisets (order only with --order), TTLs within the tolerance are equal, a missing
    reply and an unparsable one are differences of their own."""
    o = Options()
    a = view(_reply("a.example. 30 A 192.0.2.1", "a.example. 30 A 192.0.2.2"), o)
    b = view(_reply("a.example. 29 A 192.0.2.2", "a.example. 30 A 192.0.2.1"), o)
    assert differences(a, b, o) == []
    assert [d.field for d in differences(a, b, Options(order=True))] == ["answer.order"]
    c = view(_reply("a.example. 20 A 192.0.2.1", "a.example. 30 A 192.0.2.2"), o)
    assert [d.field for d in differences(a, c, o)] == ["answer.ttl"]
    assert differences(a, c, Options(ttl_tolerance=10)) == []
    assert [d.field for d in differences(a, view(_reply(rcode=3), o), o)] == ["rcode", "answer"]
    assert [d.field for d in differences(a, view(None, o), o)] == ["reply"]
    assert [d.field for d in differences(a, view(b"\x00\x01\x81\x80" + b"\x00" * 4, o), o)] == ["parse"]


def test_probe_generation() -> None:
    import random

    assert corefile_zones(".:53 {\n kubernetes cluster.local in-addr.arpa {\n }\n}\nexample.org:53 {\n}\n") == \
        [".", "cluster.local.", "in-addr.arpa.", "example.org."]
    rng = random.Random(1)
    names = random_names(["cluster.local.", "."], rng, 200)
    assert all(len(n) <= 253 for n in names)
    probes = malformed(["example.org."])
    assert any(p.wire == b"" for p in probes) and any(p.proto == "tcp" for p in probes)
    assert all(len(p.wire) < 2 or struct.unpack("!H", p.wire[:2])[0] == 0xBEEF for p in probes if p.wire)
