"""Shared by the Corefile tests (lexer, parser, dispenser): a parse with CoreDNS's directive list, summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycoredns.corefile import CorefileError, ServerBlock, Token, parse

DIRECTIVES = [
    "root", "metadata", "geoip", "cancel", "tls", "timeouts", "reload", "nsid", "bufsize", "bind",
    "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log", "dnstap", "local",
    "dns64", "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec",
    "autopath", "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns",
    "k8s_external", "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward", "grpc",
    "erratic", "whoami", "on", "sign", "view",
]  # fmt: skip


def texts(toks: list[Token]) -> list[str]:
    return [t.text for t in toks]


def summary(blocks: list[ServerBlock]) -> list[tuple[list[str], dict[str, list[str]]]]:
    return [(texts(b.keys), {k: texts(v) for k, v in b.tokens.items()}) for b in blocks]


def p(text: str, **kw) -> list[ServerBlock]:
    kw.setdefault("directives", DIRECTIVES)
    kw.setdefault("env", {})
    return parse(text, **kw)


def perr(text: str, **kw) -> str:
    with pytest.raises(CorefileError) as ei:
        p(text, **kw)
    return str(ei.value)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
