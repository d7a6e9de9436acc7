"""The all-twelve Corefile of the conformance area plugins-extra, for what its case format cannot express:
the NSID option, the EDNS payload size bufsize writes and a query over TLS (values as CoreDNS 1.14.7's)."""

from __future__ import annotations

import ssl
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import yaml
from conftest import query, running
from pycoredns_conformance.cases import CASES_DIR, COREFILES_DIR

NSID = [dns.edns.GenericOption(dns.edns.NSID, b"")]



def corefile(api, d: Path) -> str:
    spec = yaml.safe_load((CASES_DIR / "plugins-extra.yaml").read_text())
    for name, text in spec["files"].items():
        (d / name).write_text(text)
    text = (COREFILES_DIR / "Corefile.plugins-extra").read_text()
    kc = api.write_kubeconfig(d / "kubeconfig")
    return text.replace("@PORT@", "0").replace("@PORT2@", "0").replace("@DIR@", str(d)).replace(
        "@KUBECONFIG@", str(kc))


def nsid(r) -> list[bytes]:
    return [o.to_wire() for o in r.options if o.otype == dns.edns.NSID]


async def test_nsid_bufsize_and_tls(api, tmp_path: Path) -> None:
    async with running(corefile(api, tmp_path)) as srv:
        dns_port = next(lst.bound_port for lst in srv.instance.listeners.values() if lst.transport == "dns")
        tls_port = next(lst.bound_port for lst in srv.instance.listeners.values() if lst.transport == "tls")
        r = await query(dns_port, "web.example.org.", "A", use_edns=0, options=NSID)
        assert nsid(r) == [b"pycoredns-conformance"] and r.payload == 1232
        assert [rr.to_text() for rr in r.answer] == ["web.example.org. 3600 IN A 192.0.2.10"]
        r = await query(dns_port, "web.example.org.", "A", use_edns=0, payload=4096)
        assert r.payload == 1232 and nsid(r) == []
        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        ctx.check_hostname = False
        q = dns.message.make_query("localhost.", "A", use_edns=0, options=NSID)
        r = await dns.asyncquery.tls(q, "127.0.0.1", port=tls_port, timeout=5, ssl_context=ctx)
        assert [rr.to_text() for rr in r.answer] == ["localhost. 604800 IN A 127.0.0.1"]
        assert nsid(r) == [b"pycoredns-conformance"] and r.payload == 1232
