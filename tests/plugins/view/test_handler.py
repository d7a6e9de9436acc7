"""view routing through a running server (answers observed on CoreDNS 1.14.7 with this Corefile)."""

from __future__ import annotations

import dns.rcode
from conftest import query, running
from pycoredns.plugins.view.expr import compile_expr, run
from pycoredns.plugins.view.handler import FUNCTIONS

COREFILE = r""". {
    view lo {
        expr incidr(client_ip(), '127.0.0.0/24') && type() == 'A'
    }
    hosts {
        1.1.1.1 test
        fallthrough
    }
    whoami
}
. {
    view regex {
        expr name() matches '^abc\\..*\\.example\\.com\\.$' || type() in ['MX', 'TXT']
    }
    local
}
. {
    view nomatch {
        expr incidr(client_ip(), '10.0.0.0/8')
    }
    hosts {
        2.2.2.2 test
    }
}
. {
    hosts {
        3.3.3.3 test
    }
}
"""


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


async def test_blocks_chosen_by_view_in_order() -> None:
    async with running(COREFILE) as srv:
        port = srv.port()
        r = await query(port, "test.", "A")
        assert texts(r.answer) == ["test. 3600 IN A 1.1.1.1"]  # first view
        r = await query(port, "localhost.", "MX")  # second view: local's NODATA
        assert texts(r.authority) == ["localhost. 604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"]
        r = await query(port, "abc.x.y.example.com.", "AAAA")  # second view: local has no next plugin
        assert r.rcode() == dns.rcode.SERVFAIL
        r = await query(port, "test.", "AAAA")  # no view matches: the unfiltered block
        assert r.rcode() == dns.rcode.NOERROR and r.answer == []
        r = await query(port, "TEST.", "A", tcp=True)
        assert texts(r.answer) == ["test. 3600 IN A 1.1.1.1"]  # hosts answers with its own name


def test_expression_subset() -> None:
    env = dict(FUNCTIONS)
    env.update({"name": lambda: "a.example.org.", "type": lambda: "AAAA", "client_ip": lambda: "10.1.2.3"})

    def ev(text: str):
        return run(compile_expr(text, FUNCTIONS), env)

    assert ev("incidr(client_ip(), '10.0.0.0/8') and not (type() == 'A')") is True
    assert ev("name() matches '^a\\\\.' && type() in ['A', 'AAAA']") is True
    assert ev("type() not in ['A'] || false") is True
    assert ev("name() endsWith 'org.' && name() startsWith 'a.' && name() contains 'example'") is True
    assert ev("incidr(client_ip(), '2001:db8::/32')") is False


async def test_metadata_is_collected_before_the_filter() -> None:
    cf = (". {\n metadata\n view named {\n  expr metadata('view/name') == 'named' && type() == 'TXT'\n }\n"
          " whoami\n}\n. {\n local\n}\n")
    async with running(cf) as srv:
        r = await query(srv.port(), "localhost.", "TXT")  # the view matches: whoami's answer
        assert r.answer == [] and len(r.additional) == 2
        r = await query(srv.port(), "localhost.", "A")  # it does not: local's
        assert texts(r.answer) == ["localhost. 604800 IN A 127.0.0.1"]


async def test_view_label_on_core_metrics() -> None:
    """As CoreDNS 1.14.7: queries served by a view block count under view="<name>", others under ""."""
    from pycoredns import metrics

    cf = (". {\n prometheus 127.0.0.1:0\n view lo {\n  expr type() == 'A'\n }\n whoami\n}\n"
          ". {\n prometheus 127.0.0.1:0\n whoami\n}\n")
    async with running(cf) as srv:
        label = srv.instance.first_listener().label
        metrics.REGISTRY.expose()  # folds in what earlier servers on this port number left pending
        before = {k: v for k, v in metrics.requests_total.values.items() if k[0] == label}
        await query(srv.port(), "a.example.org.", "A")
        await query(srv.port(), "a.example.org.", "TXT")
        metrics.REGISTRY.expose()
        grown = {(k[5], k[2]) for k, v in metrics.requests_total.values.items()
                 if k[0] == label and v > before.get(k, 0)}
    assert grown == {("A", "lo"), ("TXT", "")}
    assert "lo" in {k[2] for k in metrics.plugin_enabled.values if k[3] == "view"}
