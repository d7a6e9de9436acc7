"""Broken Corefiles for every directive: a one-line `plugin/<name>: ...` (or parser `FILE:LINE - ...`) error.

Each case is loaded in-process (`Process.load`, parse + setup, no sockets) and must raise StartupError
with one line that names the plugin (or the file and line) and leaks no Python exception name. A few
cases that only fail when the server starts (listen addresses) run through `running()`, and a few go
through the real CLI to check exit status 1 and a clean stderr.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import trio
from conftest import query, running

from pycoredns import directives, metrics
from pycoredns.instance import StartupError
from pycoredns.process import Process

LEAK = re.compile(
    r"Traceback|\b\w*(Error|Exception)\b(?!:? *(during parsing|occurred))|NoneType|object has no attribute"
)
PARSER_FORM = re.compile(r"^\S+:\d+ - (Error during parsing|Syntax error): ")

# Arguments that are wrong for nearly every directive: they are tried everywhere.
GENERIC_ARGS = [
    "a b c d e f g h i j",
    "-1",
    "99999999999999999999999",
    "abc",
    '""',
    "🦄x\x00",
    "-5s",
    "999999999h",
    "300.1.1.1",
    "10.0.0.0/33",
    "::1/129",
    "(",
    "[",
    "*",
    "\\",
    "'x",
    "a" * 3000,
    "." * 300,
    "NaN",
    "@",
    "/nonexistent/file",
]


def block(body: str, key: str = ".") -> str:
    return f"{key} {{\n{body}\n}}\n"


def generic_cases(d: str) -> list[str]:
    out = [block(f" {d} {a}") for a in GENERIC_ARGS]
    out += [block(f" {d} {{\n  bogus_option {a}\n }}") for a in GENERIC_ARGS[:8]]
    out += [block(f" {d} {{\n  {a}\n }}") for a in GENERIC_ARGS[8:]]
    out += [
        block(f" {d}\n {{\n }}"),  # sub-block brace on the next line
        block(f" {d} }}"),  # a `}` on the directive line
        block(f" {d} {{\n  {{\n }}"),  # nested brace inside a sub-block
        f". {{\n {d} {{\n}}\n",  # unterminated sub-block
        block(f" {d} {{ }}"),  # `{ }` on one line
    ]
    return out


# Directive-specific broken variants: (Corefile body lines inside `. { }`).
SPECIFIC: dict[str, list[str]] = {
    "acl": [
        "acl {\n bogus\n }",
        "acl {\n block type BOGUS\n }",
        "acl {\n block type\n }",
        "acl {\n block net 10.0.0.0/33\n }",
        "acl {\n block net 300.1.1.1\n }",
        "acl {\n block net ::1/129\n }",
        "acl {\n block net\n }",
        "acl {\n block file\n }",
        "acl {\n block file /nonexistent\n }",
        "acl {\n allow colour red\n }",
        "acl {\n block net 10.0.0.0/8 type\n }",
        "acl bad..zone",
        "acl {\n block net 1.2.3.4/-1\n }",
        "acl {\n block type a\n }",
    ],
    "autopath": [
        "autopath",
        "autopath /nonexistent",
        "autopath @",
        "autopath bad..zone /etc/resolv.conf",
        "autopath /etc",
        "autopath example.org /nonexistent",
    ],
    "bind": [
        "bind",
        "bind 300.1.1.1",
        "bind 127.0.0.1 {\n except\n }",
        "bind 127.0.0.1 {\n except 300.1.1.1\n }",
        "bind 127.0.0.1 {\n bogus\n }",
        "bind ::1%",
        "bind 127.0.0.1/8",
        "bind nosuchiface0",
    ],
    "cache": [
        "cache 0",
        "cache -1",
        "cache abc",
        "cache 99999999999999999999999",
        "cache 30 bad..zone",
        "cache {\n success\n }",
        "cache {\n success abc\n }",
        "cache {\n success 0\n }",
        "cache {\n success 10 abc\n }",
        "cache {\n success 10 -1\n }",
        "cache {\n denial -1\n }",
        "cache {\n denial 10 20 30\n }",
        "cache {\n prefetch 0\n }",
        "cache {\n prefetch abc\n }",
        "cache {\n prefetch 10 1x\n }",
        "cache {\n prefetch 10 1m 200%\n }",
        "cache {\n prefetch 10 1m abc%\n }",
        "cache {\n prefetch 10 1m 10\n }",
        "cache {\n prefetch 10 -1m\n }",
        "cache {\n serve_stale -1s\n }",
        "cache {\n serve_stale 1h bogus\n }",
        "cache {\n serve_stale abc\n }",
        "cache {\n serve_stale_policy\n }",
        "cache {\n servfail 6m\n }",
        "cache {\n servfail -1s\n }",
        "cache {\n servfail abc\n }",
        "cache {\n disable bogus\n }",
        "cache {\n disable\n }",
        "cache {\n disable success bad..zone\n }",
        "cache {\n keepttl x\n }",
        "cache {\n success 10 10 10 10\n }",
        "cache {\n prefetch\n }",
        "cache 30\n cache 60",
    ],
    "chaos": ["chaos a {\n b\n }"],
    "errors": [
        "errors stdout x",
        "errors bogus",
        "errors {\n consolidate\n }",
        "errors {\n consolidate abc .*\n }",
        "errors {\n consolidate 1m (\n }",
        "errors {\n consolidate 1m .* bogus\n }",
        "errors {\n consolidate 1m\n }",
        "errors {\n consolidate -1m .*\n }",
        "errors {\n stacktrace x\n }",
        "errors {\n consolidate 1m a error x y\n }",
        "errors {\n consolidate 1m " + "a" * 10001 + "\n }",
        "errors\n errors",
    ],
    "forward": [
        "forward",
        "forward .",
        "forward . 300.1.1.1",
        "forward . 1.1.1.1:99999",
        "forward . 1.1.1.1:-1",
        "forward . 1.1.1.1:abc",
        "forward . https://1.1.1.1/path",
        "forward . foo://1.1.1.1",
        "forward . /nonexistent/resolv.conf",
        "forward bad..zone 1.1.1.1",
        "forward . tls://",
        "forward . 1.1.1.1 {\n max_fails -1\n }",
        "forward . 1.1.1.1 {\n max_fails abc\n }",
        "forward . 1.1.1.1 {\n health_check abc\n }",
        "forward . 1.1.1.1 {\n health_check -1s\n }",
        "forward . 1.1.1.1 {\n health_check 1s bogus\n }",
        "forward . 1.1.1.1 {\n health_check 1s domain\n }",
        "forward . 1.1.1.1 {\n health_check 1s domain bad..name\n }",
        "forward . 1.1.1.1 {\n tls /nonexistent\n }",
        "forward . 1.1.1.1 {\n tls a b c d\n }",
        "forward . 1.1.1.1 {\n expire abc\n }",
        "forward . 1.1.1.1 {\n expire -1s\n }",
        "forward . 1.1.1.1 {\n read_timeout abc\n }",
        "forward . 1.1.1.1 {\n policy bogus\n }",
        "forward . 1.1.1.1 {\n policy\n }",
        "forward . 1.1.1.1 {\n max_concurrent -1\n }",
        "forward . 1.1.1.1 {\n max_concurrent abc\n }",
        "forward . 1.1.1.1 {\n max_concurrent 99999999999999999999999\n }",
        "forward . 1.1.1.1 {\n next BOGUS\n }",
        "forward . 1.1.1.1 {\n next\n }",
        "forward . 1.1.1.1 {\n failover\n }",
        "forward . 1.1.1.1 {\n failover BOGUS\n }",
        "forward . 1.1.1.1 {\n except\n }",
        "forward . 1.1.1.1 {\n except bad..zone\n }",
        "forward . 1.1.1.1 {\n force_tcp x\n }",
        "forward . 1.1.1.1 {\n max_idle_conns -1\n }",
        "forward . 1.1.1.1 {\n max_connect_attempts abc\n }",
        "forward . 1.1.1.1 {\n tls_servername\n }",
        "forward . " + " ".join(f"127.0.0.{i}" for i in range(1, 20)),
        "forward . [::1",
        "forward . 1.1.1.1\n forward . 8.8.8.8",
        "forward . unix://",
        "forward . dns://:53",
    ],
    "health": [
        "health 300.1.1.1:8080",
        "health :99999",
        "health a b",
        "health {\n lameduck abc\n }",
        "health {\n lameduck\n }",
        "health {\n bogus\n }",
        "health :abc",
        "health {\n lameduck 1s 2s\n }",
    ],
    "hosts": [
        "hosts {\n ttl 0\n }",
        "hosts {\n ttl abc\n }",
        "hosts {\n ttl 99999\n }",
        "hosts {\n ttl\n }",
        "hosts {\n reload abc\n }",
        "hosts {\n reload -1s\n }",
        "hosts {\n reload\n }",
        "hosts {\n fallthrough\n bogus\n }",
        "hosts /etc/hosts bad..zone",
        "hosts\n hosts",
    ],
    "kubernetes": [
        "kubernetes {\n pods bogus\n }",
        "kubernetes {\n pods\n }",
        "kubernetes {\n namespaces\n }",
        "kubernetes {\n endpoint\n }",
        "kubernetes {\n endpoint a b\n }",
        "kubernetes {\n endpoint ::not a url\n }",
        "kubernetes {\n tls a\n }",
        "kubernetes {\n labels =bad\n }",
        "kubernetes {\n labels a in (\n }",
        "kubernetes {\n labels\n }",
        "kubernetes {\n namespace_labels\n }",
        "kubernetes {\n namespaces a\n namespace_labels x=y\n }",
        "kubernetes {\n ttl -1\n }",
        "kubernetes {\n ttl 3601\n }",
        "kubernetes {\n ttl abc\n }",
        "kubernetes {\n ttl\n }",
        "kubernetes {\n ignore bogus\n }",
        "kubernetes {\n kubeconfig /nonexistent\n }",
        "kubernetes {\n kubeconfig\n }",
        "kubernetes {\n startup_timeout abc\n }",
        "kubernetes {\n startup_timeout -1s\n }",
        "kubernetes {\n apiserver_qps abc\n }",
        "kubernetes {\n apiserver_burst -1\n }",
        "kubernetes {\n apiserver_burst abc\n }",
        "kubernetes {\n upstream\n }",
        "kubernetes {\n resyncperiod 1m\n }",
        "kubernetes {\n transfer to *\n }",
        "kubernetes {\n multicluster\n }",
        "kubernetes {\n fallthrough bad..zone\n }",
        "kubernetes {\n labels a=b,c\n }",
        "kubernetes {\n labels " + "a" * 300 + "=b\n }",
        "kubernetes bad..zone",
        "kubernetes\n kubernetes",
    ],
    "loadbalance": [
        "loadbalance bogus",
        "loadbalance round_robin x",
        "loadbalance weighted",
        "loadbalance weighted /nonexistent",
        "loadbalance weighted /etc/hosts {\n reload abc\n }",
        "loadbalance weighted /etc/hosts {\n bogus\n }",
        "loadbalance weighted /etc/hosts {\n reload -1s\n }",
        "loadbalance round_robin {\n bogus\n }",
        "loadbalance prefer 300.1.1.1",
    ],
    "log": [
        "log {\n class bogus\n }",
        "log {\n class\n }",
        "log . {\n bogus\n }",
        "log . {}",
        'log . "{bogus}" x',
        "log {\n class success x\n }",
    ],
    "prometheus": [
        "prometheus 300.1.1.1:9153",
        "prometheus :99999",
        "prometheus a b",
        "prometheus {\n tls\n }",
        "prometheus :abc",
        "prometheus {\n bogus\n }",
        "prometheus\n prometheus",
    ],
    "ready": ["ready a b", "ready :99999", "ready {\n bogus\n }", "ready 300.1.1.1:8181", "ready\n ready"],
    "reload": [
        'reload ""',
        "reload 1s",
        "reload abc",
        "reload 3s 0.5s",
        "reload 3s -1s",
        "reload 3s 1s 1s",
        'reload 3s ""',
        "reload -3s",
        "reload 9999999999999999h",
    ],
    "rewrite": [
        "rewrite",
        "rewrite name",
        "rewrite name a",
        "rewrite name regex ( x",
        "rewrite name bogus a b",
        "rewrite type A BOGUS",
        "rewrite class IN BOGUS",
        "rewrite ttl a abc",
        "rewrite ttl a 5-2",
        "rewrite ttl a -5",
        "rewrite edns0 local set 0xZZ 0x00",
        "rewrite edns0 local set 1",
        "rewrite edns0 subnet set 33 0",
        "rewrite edns0 subnet set abc 0",
        "rewrite edns0 bogus",
        "rewrite edns0 nsid bogus",
        "rewrite rcode a BOGUS",
        "rewrite stop name regex (.*) {1}",
        "rewrite name regex (.*) x {\n answer name\n }",
        "rewrite bogus",
        "rewrite name exact a. b. answer bogus",
        "rewrite cname exact a b",
        "rewrite name suffix",
        "rewrite name regex (.*) x answer name ( y",
        "rewrite name regex (.*) x answer value ( y",
        "rewrite name exact a. b. answer auto x",
        "rewrite continue",
        "rewrite stop",
        "rewrite edns0 local set 99999999 0x00",
        "rewrite edns0 local set 1 0xZ",
        "rewrite name substring",
        "rewrite name exact " + "a" * 300 + " b",
        "rewrite name regex (.*) {99}",
    ],
    "root": ["root", "root a b"],
    "template": [
        "template",
        "template BOGUSCLASS",
        "template IN BOGUSTYPE",
        "template IN A {\n match (\n }",
        'template IN A {\n answer "{{ .Bad "\n }',
        'template IN A {\n answer "{{ .Name }"\n }',
        "template IN A {\n rcode BOGUS\n }",
        "template IN A {\n rcode\n }",
        "template IN A {\n ederror abc\n }",
        "template IN A {\n ederror 99999\n }",
        "template IN A {\n ederror\n }",
        "template IN A {\n upstream x\n }",
        "template IN A {\n fallthrough bad..zone\n }",
        "template IN A {\n bogus\n }",
        "template IN A {\n match\n }",
        "template IN A {\n answer\n }",
        "template IN A bad..zone",
        'template IN A {\n answer "{{ bogusfunc }}"\n }',
        'template IN A {\n answer "{{ index }}"\n }',
        'template IN A {\n answer "{{ end }}"\n }',
        'template IN A {\n answer "{{ if }}"\n }',
        'template IN A {\n answer "{{ range .X }}"\n }',
        'template IN A {\n answer "{{ .Name | }}"\n }',
        'template IN A {\n answer "{{ (.Name }}"\n }',
        'template IN A {\n answer "{{ \\"x }}"\n }',
    ],
}

# NUL bytes in file paths and empty quoted strings in every position that takes a value.
NUL = "/tmp/x\x00y"
for _d, _bodies in {
    "acl": [f"acl {{\n block file {NUL}\n }}", 'acl {\n block net ""\n }', 'acl {\n block type ""\n }', 'acl ""'],
    "autopath": ['autopath ""', 'autopath "" /etc/resolv.conf'],
    "bind": ['bind ""', 'bind 127.0.0.1 {\n except ""\n }'],
    "cache": [
        'cache 30 ""',
        'cache {\n success ""\n }',
        'cache {\n prefetch 10 ""\n }',
        'cache {\n serve_stale ""\n }',
    ],
    "errors": ['errors {\n consolidate "" ""\n }', 'errors {\n consolidate 1m ""\n }'],
    "forward": [
        f"forward . {NUL}",
        'forward . ""',
        'forward "" 1.1.1.1',
        f"forward . 1.1.1.1 {{\n tls {NUL} {NUL} {NUL}\n }}",
        'forward . 1.1.1.1 {\n tls_servername ""\n }',
        'forward . 1.1.1.1 {\n health_check ""\n }',
        'forward . 1.1.1.1 {\n except ""\n }',
        'forward . 1.1.1.1 {\n next ""\n }',
    ],
    "health": ['health ""', 'health {\n lameduck ""\n }'],
    "hosts": [f"hosts {NUL}", 'hosts {\n ttl ""\n }', 'hosts {\n reload ""\n }', 'hosts {\n "" ""\n }'],
    "kubernetes": [
        f"kubernetes {{\n kubeconfig {NUL}\n }}",
        f"kubernetes {{\n tls {NUL} {NUL} {NUL}\n }}",
        'kubernetes {\n endpoint ""\n }',
        'kubernetes {\n labels ""\n }',
        'kubernetes {\n namespaces ""\n }',
        'kubernetes {\n ttl ""\n }',
        'kubernetes {\n startup_timeout ""\n }',
        'kubernetes ""',
    ],
    "loadbalance": [f"loadbalance weighted {NUL}", 'loadbalance ""', 'loadbalance weighted ""'],
    "log": ['log "" ""', 'log . ""', 'log {\n class ""\n }'],
    "prometheus": ['prometheus ""'],
    "ready": ['ready ""'],
    "reload": ['reload "" ""'],
    "rewrite": [
        'rewrite name "" x',
        'rewrite name exact "" ""',
        'rewrite name regex "" ""',
        'rewrite "" "" ""',
        'rewrite edns0 local set "" ""',
        'rewrite ttl "" ""',
        'rewrite type "" ""',
        'rewrite rcode "" ""',
    ],
    "root": [f"root {NUL}", 'root ""'],
    "template": [
        'template "" ""',
        'template IN A {\n match ""\n }',
        'template IN A {\n answer ""\n }',
        'template IN A {\n rcode ""\n }',
        'template IN A ""',
    ],
}.items():
    SPECIFIC[_d] = SPECIFIC.get(_d, []) + _bodies

# Non-ASCII digits (`²` passes str.isdigit() but not int()) wherever a number is parsed.
SUP = "\u00b2"
for _d, _bodies in {
    "rewrite": [f"rewrite ttl a {SUP}", f"rewrite ttl a 1-{SUP}", f"rewrite edns0 subnet set {SUP} 0",
                f"rewrite type A TYPE{SUP}", f"rewrite class IN CLASS{SUP}", f"rewrite rcode a {SUP}",
                f"rewrite name exact a\\{SUP}{SUP}{SUP}. b."],
    "template": [f"template IN TYPE{SUP}", f"template CLASS{SUP} A", f"template IN A {{\n ederror {SUP}\n }}",
                 f"template IN A {{\n rcode {SUP}\n }}", "template IN TYPE99999999"],
    "forward": [f"forward . 1.1.1.1:{SUP}", f"forward . 1.1.1.1 {{\n max_fails {SUP}\n }}",
                f"forward . 1.1.1.1 {{\n max_concurrent {SUP}\n }}"],
    "health": [f"health :{SUP}"], "prometheus": [f"prometheus :{SUP}"], "ready": [f"ready :{SUP}"],
    "acl": [f"acl {{\n block type TYPE{SUP}\n }}", f"acl {{\n block net 10.0.0.0/{SUP}\n }}",
            "acl {\n block type TYPE99999999\n }"],
    "cache": [f"cache {SUP}", f"cache {{\n success {SUP}\n }}", f"cache {{\n prefetch 10 1m {SUP}%\n }}"],
    "hosts": [f"hosts {{\n ttl {SUP}\n }}"],
    "kubernetes": [f"kubernetes {{\n ttl {SUP}\n }}", f"kubernetes {{\n apiserver_burst {SUP}\n }}"],
    "errors": [f"errors {{\n consolidate {SUP}m .*\n }}"],
    "reload": [f"reload {SUP}s"],
}.items():
    SPECIFIC[_d] = SPECIFIC.get(_d, []) + _bodies

# Exact texts the reference gives.
EXACT = {
    block(" cache 0"): "plugin/cache: cache TTL can not be zero or negative: 0",
    block(" cache 30\n cache 60"): "plugin/cache: this plugin can only be used once per Server Block",
    block(" reload 1s"): "plugin/reload: interval value must be greater or equal to 2s",
    block(" errors {\n  bogus\n }"): "plugin/errors: Corefile:3 - Syntax error: Unexpected token 'bogus', "
    "expecting 'Unknown field bogus'",
    block(" whoami x"): "plugin/whoami: Corefile:2 - Error during parsing: Wrong argument count or unexpected line "
    "ending after 'x'",
}


def implemented() -> list[str]:
    """The shipped plugins (other tests register throw-away directives in the same process)."""
    return [d for d in directives.directives() if d in directives.BUILTIN]


def all_cases() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for d in implemented():
        cases += [(d, text) for text in generic_cases(d)]
        cases += [(d, block(" " + body)) for body in SPECIFIC.get(d, [])]
    return cases


def load(text: str) -> str | None:
    """The StartupError text, or None if the configuration loads."""
    try:
        Process(lambda: (text, "Corefile"), dns_port=0, quiet=True, out=lambda _: None).load((text, "Corefile"))
    except StartupError as e:
        return str(e)
    return None


def check_message(directive: str, msg: str) -> None:
    assert "\n" not in msg.strip(), msg
    assert not LEAK.search(msg), msg
    assert msg.startswith(f"plugin/{directive}: ") or PARSER_FORM.match(msg), msg


def test_every_implemented_directive_has_specific_cases_or_is_argless():
    """New directives must get a row in SPECIFIC (or be listed here as taking nothing to break)."""
    argless_or_generic = {"any", "debug", "loop", "minimal", "whoami"}
    missing = [d for d in implemented() if d not in SPECIFIC and d not in argless_or_generic]
    assert not missing, f"add broken-Corefile cases for: {missing}"


@pytest.mark.parametrize("directive", implemented())
def test_broken_variants_give_one_clean_line(directive: str):
    """Every broken variant is refused with one clean line, or (generic noise a plugin ignores) loads."""
    bad = []
    for d, text in all_cases():
        if d != directive:
            continue
        msg = load(text)
        if msg is None:
            continue
        try:
            check_message(directive, msg)
        except AssertionError:
            bad.append((text[:120], msg[:300]))
    assert not bad, "\n".join(f"{t!r} -> {m!r}" for t, m in bad)


# Variants that must be refused (not silently accepted): a selection where CoreDNS errors for sure.
MUST_FAIL = [
    ("acl", " acl {\n  bogus\n }"),
    ("acl", " acl {\n  block net 10.0.0.0/33\n }"),
    ("autopath", " autopath"),
    ("bind", " bind"),
    ("bind", " bind 300.1.1.1"),
    ("cache", " cache -1"),
    ("cache", " cache {\n  servfail 6m\n }"),
    ("errors", " errors {\n  consolidate 1m (\n }"),
    ("forward", " forward ."),
    ("forward", " forward . 1.1.1.1 {\n  policy bogus\n }"),
    ("forward", " forward . 1.1.1.1 {\n  max_fails abc\n }"),
    ("health", " health a b"),
    ("hosts", " hosts {\n  ttl 0\n }"),
    ("kubernetes", " kubernetes {\n  pods bogus\n }"),
    ("kubernetes", " kubernetes {\n  ignore bogus\n }"),
    ("kubernetes", " kubernetes {\n  upstream\n }"),
    ("kubernetes", " kubernetes\n kubernetes"),
    ("loadbalance", " loadbalance bogus"),
    ("prometheus", " prometheus a b"),
    ("ready", " ready a b"),
    ("reload", ' reload ""'),
    ("reload", " reload abc"),
    ("rewrite", " rewrite name"),
    ("rewrite", " rewrite name regex ( x"),
    ("root", " root"),
    ("template", " template IN A {\n  match (\n }"),
    ("template", " template IN BOGUSTYPE"),
    ("whoami", " whoami x"),
    ("any", " any x"),
    ("loop", " loop x"),
    ("minimal", " minimal x"),
    ("debug", " debug x"),
]


@pytest.mark.parametrize("directive,body", MUST_FAIL)
def test_must_fail(directive: str, body: str):
    msg = load(block(body))
    assert msg is not None, f"accepted: {body!r}"
    check_message(directive, msg)


@pytest.mark.parametrize("text,expected", list(EXACT.items()))
def test_reference_texts(text: str, expected: str):
    assert load(text) == expected


async def _serve_and_query(corefile: str, name: str, want: str) -> None:
    async with running(corefile) as srv:
        r = await query(srv.port(), name, "A")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == [want]


async def test_hosts_garbage_file_answers(tmp_path):
    p = tmp_path / "hosts"
    p.write_bytes(
        b"\xff\xfe garbage\n300.1.1.1 bad\n1.2.3.4\n::1%zz foo\n" + b"a" * 5000 + b"\n"
        b"10.0.0.1 " + b"x" * 70 + b".example.\n\x00\x00\n10.0.0.2 good.example.\n"
    )
    await _serve_and_query(block(f" hosts {p}\n errors"), "good.example.", "10.0.0.2")


async def test_acl_networks_file_with_garbage(tmp_path):
    p = tmp_path / "nets"
    p.write_bytes(b"10.0.0.0/8\nnot-a-cidr\n")
    msg = load(block(f" acl {{\n  block file {p}\n }}\n whoami"))
    assert msg is not None
    check_message("acl", msg)


async def test_weight_file_with_garbage(tmp_path):
    """A weighted loadbalance file with junk: a clean error at setup, or a running server."""
    p = tmp_path / "w"
    p.write_bytes(b"\xff\xfe\nexample.org\n300.1.1.1 5\n1.2.3.4 abc\n1.2.3.4 -1\n1.2.3.4 99999999999\n")
    text = block(f" loadbalance weighted {p}\n whoami")
    msg = load(text)
    if msg is not None:
        check_message("loadbalance", msg)
    else:
        async with running(text) as srv:
            assert (await query(srv.port(), "example.org", "A")).rcode() == 0


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


async def _eventually(check, timeout: float = 5.0) -> None:
    """Poll `check` every 50 ms until true (bounded in count and time)."""
    with trio.move_on_after(timeout):
        for _ in range(int(timeout / 0.05) + 1):
            if await check():
                return
            await trio.sleep(0.05)
    assert await check(), "condition not reached in time"


async def test_hosts_file_turning_to_garbage_at_runtime(tmp_path):
    """The reload loop survives a file that becomes binary junk, vanishes, or becomes a directory."""
    p = tmp_path / "hosts"
    p.write_text("10.0.0.2 good.example.\n")
    panics = metrics.panics_total.get()
    async with running(block(f" hosts {p} {{\n  reload 50ms\n }}\n errors")) as srv:
        port = srv.port()

        async def answers(want: str) -> bool:
            m = await query(port, "good.example.", "A")
            return [rr.to_text() for rrset in m.answer for rr in rrset] == [want]

        await _eventually(lambda: answers("10.0.0.2"))
        p.write_bytes(b"\xff\x00\xfe" * 1000 + b"\n10.0.0.3 good.example.\n" + b"\x00" * 100)
        await _eventually(lambda: answers("10.0.0.3"))
        p.unlink()
        await trio.sleep(0.2)
        p.mkdir()
        await trio.sleep(0.2)
        p.rmdir()
        p.write_text("10.0.0.4 good.example.\n")
        await _eventually(lambda: answers("10.0.0.4"))
    assert metrics.panics_total.get() == panics


async def test_weight_file_turning_to_garbage_at_runtime(tmp_path):
    """loadbalance weighted: a bad weight file at reload is logged; the server keeps serving."""
    p = tmp_path / "w"
    p.write_text("w.example.\n10.0.0.1 100\n10.0.0.2 1\n")
    hosts = "  10.0.0.1 w.example.\n  10.0.0.2 w.example.\n"
    panics = metrics.panics_total.get()
    async with running(block(f" hosts {{\n{hosts} }}\n loadbalance weighted {p} {{\n  reload 50ms\n }}")) as srv:
        port = srv.port()
        for content in (f"w.example.\n10.0.0.1 {SUP}\n", "\xff\xfe garbage", "w.example.\n10.0.0.1 0\n", None,
                        "w.example.\n10.0.0.2 100\n10.0.0.1 1\n"):
            if content is None:
                p.unlink()
            else:
                p.write_text(content)
            await trio.sleep(0.2)
            m = await query(port, "w.example.", "A")
            assert m.rcode() == 0 and len(m.answer[0]) == 2, content
    assert metrics.panics_total.get() == panics
