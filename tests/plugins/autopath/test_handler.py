"""autopath: server-side search path completion from a resolv.conf (template backends) and from the
kubernetes plugin (`@kubernetes`, `pods verified`, API test server), through a running server
(moved from tests/test_autopath.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from conftest import query, running
from pycoredns.plugins.autopath.metrics import success_total
from pycoredns_conformance.apiserver import FIXTURE_CLUSTER, APIServer, load_objects

RESOLV = """# generated
nameserver 127.0.0.1
search ns1.svc.cluster.local svc.cluster.local cluster.local example.org
options ndots:5
"""

BACKENDS = r"""
    template IN A svc.cluster.local {
      match ^web[.]ns1[.]svc[.]cluster[.]local[.]$
      answer "{{ .Name }} 5 IN A 10.0.0.1"
      fallthrough
    }
    template IN A example.org {
      match ^www[.]example[.]org[.]$
      answer "{{ .Name }} 7 IN A 10.0.0.2"
      fallthrough
    }
    template IN A . {
      match ^alias[.]example[.]org[.]$
      answer "{{ .Name }} 9 IN CNAME www.example.org."
      fallthrough
    }
    template ANY ANY {
      rcode NXDOMAIN
      authority "cluster.local. 30 IN SOA ns. host. 1 2 3 4 5"
    }
"""


@pytest.fixture
def resolv(tmp_path: Path) -> str:
    p = tmp_path / "resolv.conf"
    p.write_text(RESOLV)
    return str(p)


def texts(section) -> list[str]:
    return [rr.to_text() for rr in section]


def successes() -> float:
    return sum(success_total.values.values())


async def test_search_path_with_cname_synthesis(resolv: str) -> None:
    async with running(". {\n    autopath " + resolv + BACKENDS + "}\n") as srv:
        s0 = successes()
        r = await query(srv.port(), "WWW.ns1.svc.cluster.local", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert r.question[0].name.to_text() == "WWW.ns1.svc.cluster.local."
        assert texts(r.answer) == ["WWW.ns1.svc.cluster.local. 7 IN CNAME www.example.org.",
                                   "www.example.org. 7 IN A 10.0.0.2"]
        assert successes() == s0 + 1
        # the first element answers: no CNAME, still counted
        r = await query(srv.port(), "web.ns1.svc.cluster.local", "A", tcp=True)
        assert texts(r.answer) == ["web.ns1.svc.cluster.local. 5 IN A 10.0.0.1"]
        assert successes() == s0 + 2
        # the winner already starts with a CNAME of another owner: one more CNAME in front
        r = await query(srv.port(), "alias.example.org.ns1.svc.cluster.local", "A")
        assert texts(r.answer) == [
            "alias.example.org.ns1.svc.cluster.local. 9 IN CNAME alias.example.org.",
            "alias.example.org. 9 IN CNAME www.example.org.",
            "www.example.org. 7 IN A 10.0.0.2",
        ]


async def test_all_nxdomain_returns_the_first_reply(resolv: str) -> None:
    async with running(". {\n    autopath " + resolv + BACKENDS + "}\n") as srv:
        s0 = successes()
        r = await query(srv.port(), "nope.ns1.svc.cluster.local", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
        assert r.question[0].name.to_text() == "nope.ns1.svc.cluster.local."
        assert texts(r.authority) == ["cluster.local. 30 IN SOA ns. host. 1 2 3 4 5"]
        assert successes() == s0


async def test_names_outside_the_first_element_or_zones_pass_through(resolv: str) -> None:
    cf = ". {\n    autopath cluster.local " + resolv + BACKENDS + "}\n"
    async with running(cf) as srv:
        s0 = successes()
        r = await query(srv.port(), "www.svc.cluster.local", "A")  # not below ns1.svc.cluster.local
        assert r.rcode() == dns.rcode.NXDOMAIN
        r = await query(srv.port(), "www.example.org", "A")
        assert texts(r.answer) == ["www.example.org. 7 IN A 10.0.0.2"]
        assert successes() == s0
    cf = ". {\n    autopath example.net " + resolv + BACKENDS + "}\n"
    async with running(cf) as srv:  # ZONE excludes cluster.local: no autopath at all
        r = await query(srv.port(), "www.ns1.svc.cluster.local", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer


async def test_the_first_element_itself_is_servfail(resolv: str) -> None:
    async with running(". {\n    errors\n    autopath " + resolv + BACKENDS + "}\n") as srv:
        r = await query(srv.port(), "ns1.svc.cluster.local", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer


async def test_unknown_or_unsupporting_plugin_means_no_search_list(resolv: str) -> None:
    for target in ("@nothere", "@template"):
        async with running(". {\n    autopath " + target + BACKENDS + "}\n") as srv:
            r = await query(srv.port(), "www.ns1.svc.cluster.local", "A")
            assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer


# -- @kubernetes -----------------------------------------------------------------------------------


def _client_pod() -> dict:
    """A running pod in ns1 whose IP is the test client's (127.0.0.1)."""
    objs = load_objects(FIXTURE_CLUSTER)
    pod = copy.deepcopy(next(o for o in objs if o["kind"] == "Pod"))
    pod["metadata"] = {"name": "client", "namespace": "ns1"}
    pod["status"]["podIP"] = "127.0.0.1"
    pod["status"]["podIPs"] = [{"ip": "127.0.0.1"}]
    return pod


@pytest.fixture(scope="module")
def api():
    with APIServer([*load_objects(FIXTURE_CLUSTER), _client_pod()]) as server:
        server.start()
        yield server


async def test_kubernetes_search_list(api, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    cf = f""".:0 {{
    autopath @kubernetes
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kc}
        pods verified
    }}
    template IN A example.org {{
      match ^www[.]example[.]org[.]$
      answer "{{{{ .Name }}}} 7 IN A 10.0.0.2"
    }}
}}
"""
    async with running(cf) as srv:
        s0 = successes()
        r = await query(srv.port(), "svc1.ns1.svc.cluster.local", "A")
        assert texts(r.answer) == ["svc1.ns1.svc.cluster.local. 5 IN A 10.240.16.101"]
        r = await query(srv.port(), "svc1.ns2.svc.ns1.svc.cluster.local", "A")
        assert texts(r.answer) == ["svc1.ns2.svc.ns1.svc.cluster.local. 5 IN CNAME svc1.ns2.svc.cluster.local.",
                                   "svc1.ns2.svc.cluster.local. 5 IN A 10.240.16.201"]
        r = await query(srv.port(), "www.example.org.ns1.svc.cluster.local", "A")
        assert texts(r.answer) == ["www.example.org.ns1.svc.cluster.local. 7 IN CNAME www.example.org.",
                                   "www.example.org. 7 IN A 10.0.0.2"]
        assert successes() == s0 + 3
        # the walk reaches "nothing." outside every zone; kubernetes has no next plugin: the error
        # ends the walk (CoreDNS returns the first error as it comes)
        r = await query(srv.port(), "nothing.ns1.svc.cluster.local", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
