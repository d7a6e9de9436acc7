"""The Corefile parser: server blocks, directives, errors, env vars, snippets, imports, the fingerprint
(coredns/caddy, reference §1.2-1.7 and §7)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from corefile_helpers import p, perr, summary, texts, write

from pycoredns.corefile import (
    CorefileError,
    Dispenser,
    Token,
    fingerprint,
    parse,
)

KUBEADM = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""


NODELOCAL = """\
cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.11 {
            force_tcp
    }
    prometheus :9253
    health 169.254.20.10:8080
    }
in-addr.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.11 {
            force_tcp
    }
    prometheus :9253
    }
ip6.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.11 {
            force_tcp
    }
    prometheus :9253
    }
.:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . /etc/resolv.conf
    prometheus :9253
    }
"""


def test_kubeadm_corefile() -> None:
    (b,) = p(KUBEADM)
    assert texts(b.keys) == [".:53"]
    assert list(b.tokens) == [
        "errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload",
        "loadbalance",
    ]  # fmt: skip
    assert texts(b.tokens["health"]) == ["health", "{", "lameduck", "5s", "}"]
    assert texts(b.tokens["kubernetes"]) == [
        "kubernetes", "cluster.local", "in-addr.arpa", "ip6.arpa", "{", "pods", "insecure",
        "fallthrough", "in-addr.arpa", "ip6.arpa", "ttl", "30", "}",
    ]  # fmt: skip
    assert texts(b.tokens["cache"]) == [
        "cache", "30", "{", "disable", "success", "cluster.local", "disable", "denial", "cluster.local", "}",
    ]  # fmt: skip
    assert [t.line for t in b.tokens["cache"]] == [16, 16, 16, 17, 17, 17, 18, 18, 18, 19]
    assert all(t.file == "Corefile" for v in b.tokens.values() for t in v)
    assert b.keys[0].line == 1


def test_nodelocal_corefile() -> None:
    blocks = p(NODELOCAL, filename="/etc/Corefile")
    assert [texts(b.keys) for b in blocks] == [["cluster.local:53"], ["in-addr.arpa:53"], ["ip6.arpa:53"], [".:53"]]
    assert texts(blocks[0].tokens["bind"]) == ["bind", "169.254.20.10", "10.96.0.10"]
    assert texts(blocks[0].tokens["forward"]) == ["forward", ".", "10.96.0.11", "{", "force_tcp", "}"]
    assert texts(blocks[3].tokens["forward"]) == ["forward", ".", "/etc/resolv.conf"]
    assert texts(blocks[0].tokens["cache"]) == ["cache", "{", "success", "9984", "30", "denial", "9984", "5", "}"]
    assert blocks[3].tokens["prometheus"][0].file == "/etc/Corefile"


def test_nodelocal_ipvs_empty_dns_server() -> None:
    # IPVS mode: __PILLAR__DNS__SERVER__ replaced with "" leaves "bind 169.254.20.10 "
    (b,) = p(".:53 {\n    bind 169.254.20.10 \n    forward . /etc/resolv.conf\n    }\n")
    assert texts(b.tokens["bind"]) == ["bind", "169.254.20.10"]


PARSE_OK = [
    # (corefile, expected summary)
    (".", [(["."], {})]),
    ("example.org example.net", [(["example.org", "example.net"], {})]),
    (". {\n}", [(["."], {})]),
    (". {\nwhoami\n}", [(["."], {"whoami": ["whoami"]})]),
    (". { whoami\n}", [(["."], {"whoami": ["whoami"]})]),
    (".\n{\nwhoami\n}", [(["."], {"whoami": ["whoami"]})]),
    (".:1053\nwhoami\nlog", [([".:1053"], {"whoami": ["whoami"], "log": ["log"]})]),
    (
        "a.org, b.org,\n c.org d.org {\n whoami\n}",
        [(["a.org", "b.org", "c.org", "d.org"], {"whoami": ["whoami"]})],
    ),
    ("a.org,b.org {\n}", [(["a.org,b.org"], {})]),  # no space: one odd key (§7)
    ('"" a.org {\n}', [(["a.org"], {})]),
    (
        "10.0.0.0/24 fd00::/64:1053 {\n whoami\n}",
        [(["10.0.0.0/24", "fd00::/64:1053"], {"whoami": ["whoami"]})],
    ),
    (
        ". {\n log\n whoami\n log . {combined}\n}",
        [(["."], {"log": ["log", "log", ".", "{combined}"], "whoami": ["whoami"]})],
    ),
    (
        "a.org {\n whoami\n}\nb.org {\n log\n}\n",
        [(["a.org"], {"whoami": ["whoami"]}), (["b.org"], {"log": ["log"]})],
    ),
    (
        ". {\n hosts {\n  1.2.3.4 a {\n   x\n  }\n }\n}",
        [(["."], {"hosts": ["hosts", "{", "1.2.3.4", "a", "{", "x", "}", "}"]})],
    ),
    # a '{' on the next line joins the previous directive (the plugin then sees 2 instances)
    (". {\n cache 30\n {\n success 10\n }\n}", [(["."], {"cache": ["cache", "30", "{", "success", "10", "}"]})]),
    # missing final '}' after a nested block goes unnoticed (§1.2.7, §7)
    (
        ". {\n forward . 1.1.1.1 {\n  force_tcp\n }\n",
        [(["."], {"forward": ["forward", ".", "1.1.1.1", "{", "force_tcp", "}"]})],
    ),
    ("{\n whoami\n}", []),  # no keys: not a server
    # 'force_tcp }' closes the forward block; the next '}' closes the server block ...
    (
        ". {\n forward . 1.1.1.1 {\n  force_tcp }\n}",
        [(["."], {"forward": ["forward", ".", "1.1.1.1", "{", "force_tcp", "}"]})],
    ),
    # ... so an extra '}' after it starts a new block whose key is '}' (caddy does the same)
    (
        ". {\n forward . 1.1.1.1 {\n  force_tcp }\n }\n}",
        [(["."], {"forward": ["forward", ".", "1.1.1.1", "{", "force_tcp", "}"]}), (["}"], {})],
    ),
    ("", []),
    ("# only a comment\n", []),
]


@pytest.mark.parametrize(("src", "want"), PARSE_OK)
def test_parse_ok(src: str, want: list) -> None:
    assert summary(p(src)) == want


def test_template_go_template_quoted() -> None:
    src = '. {\n template IN A example {\n  answer "{{ .Name }} 60 IN A 127.0.0.1"\n }\n}'
    (b,) = p(src)
    assert texts(b.tokens["template"])[5:7] == ["answer", "{{ .Name }} 60 IN A 127.0.0.1"]


PARSE_ERRORS = [
    # (corefile, exact message)
    (". {\n foo\n}", "Corefile:2 - Error during parsing: Unknown directive 'foo'"),
    (". {\n Whoami\n}", "Corefile:2 - Error during parsing: Unknown directive 'Whoami'"),
    (". {\n proxy . /etc/resolv.conf\n}", "Corefile:2 - Error during parsing: Unknown directive 'proxy'"),
    (". { whoami }", "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace"),
    (". {\n whoami }\n}", "Corefile:2 - Error during parsing: Unexpected '}' because no matching opening brace"),
    (
        "a.org, {\n whoami\n}",
        "Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma",
    ),
    ("a.org,\n{\n}", "Corefile:2 - Error during parsing: Expected another address but had '{' - check for extra comma"),
    ("a.org,", "Corefile:1 - Error during parsing: Unexpected EOF"),
    (". {\n whoami", "Corefile:2 - Syntax error: Unexpected token 'whoami', expecting '}'"),
    (". {\n whoami\n log", "Corefile:3 - Syntax error: Unexpected token 'log', expecting '}'"),
    (". {", "Corefile:1 - Syntax error: Unexpected token '{', expecting '}'"),
    (". {\n forward . 1.1.1.1 {\n  force_tcp\n", "Corefile:3 - Error during parsing: Unexpected EOF"),
    ("(snip)\nwhoami", "Corefile:2 - Syntax error: Unexpected token 'whoami', expecting '{'"),
    ("(snip) {\n log\n", "Corefile:2 - Syntax error: Unexpected token 'log', expecting '}'"),
    (
        "(s) {\n log\n}\n(s) {\n errors\n}",
        "Corefile:4 - Error during parsing: redeclaration of previously declared snippet s",
    ),
    ("(s) {\n import s\n}", "Corefile:3 - Error during parsing: maximum snippet import depth (10000) exceeded"),
    (
        ". {\n import\n}",
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
    ),
    ('. {\n import ""\n}', "Corefile:2 - Error during parsing: Import requires a non-empty filepath"),
    (
        ". {\n import a b\n}",
        "Corefile:2 - Error during parsing: Import takes only one argument (glob pattern or file)",
    ),
    (". {\n import nosuchsnippet\n}", "Corefile:2 - Error during parsing: File to import not found: nosuchsnippet"),
    ("import missing.conf", "Corefile:1 - Error during parsing: File to import not found: missing.conf"),
    # snippets must be defined before use
    (
        ". {\n import late\n}\n(late) {\n log\n}",
        "Corefile:2 - Error during parsing: File to import not found: late",
    ),
]


@pytest.mark.parametrize(("src", "want"), PARSE_ERRORS)
def test_parse_errors(src: str, want: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative imports resolve against an empty directory
    assert perr(src) == want


def test_error_attributes() -> None:
    with pytest.raises(CorefileError) as ei:
        p(". {\n\n foo\n}", filename="/etc/coredns/Corefile")
    e = ei.value
    assert (e.file, e.line, e.msg) == ("/etc/coredns/Corefile", 3, "Unknown directive 'foo'")


def test_no_directive_validation() -> None:
    (b,) = parse(". {\n foo bar\n}", directives=None, env={})
    assert texts(b.tokens["foo"]) == ["foo", "bar"]


def test_env_substitution() -> None:
    env = {"PORT": "1053", "UP": "1.1.1.1 8.8.8.8", "DIR": "whoami", "Z": "example.org", "W": "win"}
    src = "{$Z}:{$PORT} {\n {$DIR}\n forward . {$UP}\n log {%W%} {$UNSET} x{$}y{$Z}\n}"
    (b,) = p(src, env=env)
    assert texts(b.keys) == ["example.org:1053"]
    assert texts(b.tokens["forward"]) == ["forward", ".", "1.1.1.1 8.8.8.8"]  # never split
    assert texts(b.tokens["log"]) == ["log", "win", "", "x{$}y{$Z}"]  # "{$}" stops substitution
    assert texts(b.tokens["whoami"]) == ["{$DIR}"]  # caddy keeps the name token as written


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCOREDNS_TEST_ZONE", "env.example")
    (b,) = parse("{$PYCOREDNS_TEST_ZONE} {\n}\n")
    assert texts(b.keys) == ["env.example"]


def test_env_key_with_trailing_comma_and_empty() -> None:
    (b,) = p("{$A} {$EMPTY} {$B} {\n}", env={"A": "a.org,", "B": "b.org", "EMPTY": ""})
    assert texts(b.keys) == ["a.org", "b.org"]


def test_env_windows_form_first_and_repeats() -> None:
    from pycoredns.corefile import replace_env

    assert replace_env("{%A%}{$A}{$A}", {"A": "x"}) == "xxx"
    assert replace_env("{$A", {"A": "x"}) == "{$A"
    assert replace_env("{{$x}}", {}) == "{}"  # the template pitfall: write {{ $x }}
    assert replace_env("{{ $x }}", {}) == "{{ $x }}"
    assert replace_env("{$LOOP}", {"LOOP": "{$LOOP}"}) == "{$LOOP}"  # terminates (Go would spin)


def test_env_in_snippet_name_and_import_pattern() -> None:
    src = "({$N}) {\n whoami\n}\n. {\n import {$N}\n}"
    (b,) = p(src, env={"N": "common"})
    assert texts(b.tokens["whoami"]) == ["whoami"]


def test_snippet_at_all_levels() -> None:
    src = """\
(blocks) {
    a.org {
        whoami
    }
}
(directives) {
    errors
    log
}
(options) {
    force_tcp
    max_fails 3
}
(empty) {
}
import blocks
b.org {
    import directives
    import empty
    forward . 1.1.1.1 {
        import options
    }
}
"""
    blocks = p(src)
    assert summary(blocks) == [
        (["a.org"], {"whoami": ["whoami"]}),
        (
            ["b.org"],
            {
                "errors": ["errors"],
                "log": ["log"],
                "forward": ["forward", ".", "1.1.1.1", "{", "force_tcp", "max_fails", "3", "}"],
            },
        ),
    ]
    # snippet tokens keep the line they were written on
    assert [t.line for t in blocks[1].tokens["forward"]] == [20, 20, 20, 20, 11, 12, 12, 22]


def test_snippet_importing_snippet() -> None:
    src = "(a) {\n log\n}\n(b) {\n import a\n errors\n}\n. {\n import b\n}"
    assert summary(p(src)) == [(["."], {"log": ["log"], "errors": ["errors"]})]


def test_snippet_mutual_import_hits_limit() -> None:
    src = "(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}"
    msg = perr(src)
    assert msg.endswith("Error during parsing: maximum snippet import depth (10000) exceeded")


def test_snippet_error_points_at_snippet_line() -> None:
    assert perr("(s) {\n bogus\n}\n. {\n import s\n}") == "Corefile:2 - Error during parsing: Unknown directive 'bogus'"


def test_snippet_only_key_is_a_block_if_file_ends() -> None:
    # caddy returns addresses-only files before the snippet check
    assert summary(p("(snip)")) == [(["(snip)"], {})]


def test_import_file_relative_to_importing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    write(tmp_path / "conf" / "Corefile", ". {\n import sub/plugins.conf\n}\n")
    write(tmp_path / "conf" / "sub" / "plugins.conf", "errors\nimport more.conf\n")
    write(tmp_path / "conf" / "sub" / "more.conf", "\n\nlog\n")
    main = tmp_path / "conf" / "Corefile"
    (b,) = p(main.read_text(), filename=str(main))
    assert texts(b.tokens["errors"]) == ["errors"]
    sub = str(tmp_path / "conf" / "sub" / "plugins.conf")
    assert (b.tokens["errors"][0].file, b.tokens["errors"][0].line) == (sub, 1)
    more = str(tmp_path / "conf" / "sub" / "more.conf")
    assert (b.tokens["log"][0].file, b.tokens["log"][0].line) == (more, 3)


def test_import_relative_to_cwd_for_main_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "extra.conf", "b.org {\n log\n}\n")
    for name in ("Corefile", "stdin"):
        blocks = p("import extra.conf\na.org {\n whoami\n}\n", filename=name)
        assert [texts(b.keys) for b in blocks] == [["b.org"], ["a.org"]]
        assert blocks[0].keys[0].file == str(tmp_path / "extra.conf")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"[{record.levelname}] {record.getMessage()}")


def test_import_glob_lexical_order_and_warning(tmp_path: Path) -> None:
    write(tmp_path / "d" / "b.server", "b.org {\n log\n}\n")
    write(tmp_path / "d" / "a.server", "a.org {\n log\n}\n")
    write(tmp_path / "d" / "c.other", "c.org {\n log\n}\n")
    main = str(tmp_path / "Corefile")
    blocks = p("import d/*.server\n", filename=main)
    assert [texts(b.keys) for b in blocks] == [["a.org"], ["b.org"]]
    blocks = p("import d/?.server\n", filename=main)
    assert [texts(b.keys) for b in blocks] == [["a.org"], ["b.org"]]
    # the conftest may stop propagation to the root logger, so listen on "pycoredns" itself
    cap = _Capture()
    logger = logging.getLogger("pycoredns")
    logger.addHandler(cap)
    try:
        assert p(". {\n import d/*.none\n whoami\n}", filename=main)[0].tokens.keys() == {"whoami"}
    finally:
        logger.removeHandler(cap)
    assert cap.lines == ["[WARNING] No files matching import glob pattern: d/*.none"]


def test_import_glob_matches_dotfiles_and_dirs(tmp_path: Path) -> None:
    # kubelet's ConfigMap mount: ..data and ..<timestamp> are directories that '*' matches (§7)
    cm = tmp_path / "cm"
    (cm / "..2026_01_01").mkdir(parents=True)
    (cm / "..data").symlink_to("..2026_01_01")
    write(cm / "..2026_01_01" / "Corefile", ". {\n whoami\n}\n")
    (cm / "Corefile").symlink_to("..data/Corefile")
    main = str(tmp_path / "Corefile")
    msg = perr("import cm/*\n", filename=main)
    assert msg == f"{main}:1 - Error during parsing: Could not import {cm}/..2026_01_01: is a directory"
    assert summary(p("import cm/Corefile\n", filename=main)) == [(["."], {"whoami": ["whoami"]})]
    assert summary(p("import cm/Corefile*\n", filename=main)) == [(["."], {"whoami": ["whoami"]})]


def test_import_directory_and_glob_errors(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    main = str(tmp_path / "Corefile")
    assert perr("import dir\n", filename=main) == (
        f"{main}:1 - Error during parsing: Could not import {tmp_path}/dir: is a directory"
    )
    assert perr(". {\n import *a*\n}", filename=main) == (
        f"{main}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), "
        f"but has others: {tmp_path}/*a*"
    )
    assert perr("import ?a?\n", filename=main).endswith(f"but has others: {tmp_path}/?a?")
    assert perr("import [ab]\n", filename=main).endswith(f"but has others: {tmp_path}/[ab]")
    assert perr("import a[b\n", filename=main) == (
        f"{main}:1 - Error during parsing: Failed to use import pattern a[b: syntax error in pattern"
    )
    assert perr("import /nonexistent/x.conf\n", filename=main) == (
        f"{main}:1 - Error during parsing: File to import not found: /nonexistent/x.conf"
    )


def test_import_error_in_imported_file_names_abs_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "inc" / "bad.conf", "\nbogus arg\n")
    assert perr(". {\n import inc/bad.conf\n}") == (
        f"{tmp_path}/inc/bad.conf:2 - Error during parsing: Unknown directive 'bogus'"
    )


def test_import_file_then_redeclare_snippet(tmp_path: Path) -> None:
    write(tmp_path / "common", "(common) {\n errors\n}\n")
    write(tmp_path / "other", "\n\n(common) {\n log\n}\n")
    main = str(tmp_path / "Corefile")
    (b,) = p("import common\n. {\n import common\n}\n", filename=main)
    assert texts(b.tokens["errors"]) == ["errors"]
    assert perr("import common\nimport other\n", filename=main) == (
        f"{tmp_path}/other:3 - Error during parsing: redeclaration of previously declared snippet common"
    )


def test_import_read_file_injection(tmp_path: Path) -> None:
    files = {str(tmp_path / "virtual.conf"): "whoami\n"}

    def read(path: str) -> str:
        try:
            return files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    (b,) = p(". {\n import virtual.conf\n}", filename=str(tmp_path / "Corefile"), read_file=read)
    assert b.tokens["whoami"][0].file == str(tmp_path / "virtual.conf")
    assert perr(". {\n import nope.conf\n}", filename=str(tmp_path / "Corefile"), read_file=read) == (
        f"{tmp_path}/Corefile:2 - Error during parsing: File to import not found: nope.conf"
    )


def test_import_empty_file_at_end(tmp_path: Path) -> None:
    write(tmp_path / "empty.conf", "# nothing\n")
    main = str(tmp_path / "Corefile")
    assert summary(p(". {\n whoami\n import empty.conf\n}", filename=main)) == [(["."], {"whoami": ["whoami"]})]
    assert summary(p(". {\n whoami\n}\nimport empty.conf", filename=main)) == [(["."], {"whoami": ["whoami"]})]


def test_self_importing_file_terminates_at_the_real_limit(tmp_path: Path) -> None:
    main = tmp_path / "Corefile"
    main.write_text("import Corefile\n")
    t0 = time.monotonic()
    msg = perr("import Corefile\n", filename=str(main))
    assert time.monotonic() - t0 < 10
    # caddy's message prints the snippet limit (10000) although the file limit is 100000
    assert msg == f"{main}:1 - Error during parsing: maximum file import depth (10000) exceeded"


@pytest.mark.parametrize(
    "body",
    [
        "import Corefile\n. {\n whoami\n}\n",
        ". {\n whoami\n}\nimport ./Corefile\n",
        "(s) {\n whoami\n}\n. {\n import s\n}\nimport Corefile\n",
    ],
)
def test_self_importing_file_terminates(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycoredns.corefile.parser as parser_mod

    monkeypatch.setattr(parser_mod, "MAX_FILE_EXPANSIONS", 2000)  # same code path, faster test
    main = tmp_path / "Corefile"
    main.write_text(body)
    msg = perr(body, filename=str(main))
    if "(s)" in body:  # the re-imported file redeclares its own snippet first
        assert msg == f"{main}:1 - Error during parsing: redeclaration of previously declared snippet s"
    else:
        assert msg.startswith(f"{main}:")
        assert msg.endswith(" - Error during parsing: maximum file import depth (10000) exceeded")


def test_self_importing_file_inside_block_without_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycoredns.corefile.parser as parser_mod

    monkeypatch.setattr(parser_mod, "MAX_FILE_EXPANSIONS", 2000)
    main = tmp_path / "Corefile"
    body = ". {\n hosts {\n  import Corefile\n }\n}\n"
    main.write_text(body)
    with pytest.raises(CorefileError, match=r"maximum file import depth \(10000\) exceeded"):
        parse(body, str(main), directives=None, env={})
    # with validation too: inside hosts' braces the imported tokens are sub-options, never checked
    with pytest.raises(CorefileError, match=r"maximum file import depth \(10000\) exceeded"):
        p(body, filename=str(main))


def test_mutual_file_imports_terminate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycoredns.corefile.parser as parser_mod

    monkeypatch.setattr(parser_mod, "MAX_FILE_EXPANSIONS", 500)
    write(tmp_path / "a.conf", "import b.conf\n")
    write(tmp_path / "b.conf", "import a.conf\n")
    msg = perr("import a.conf\n", filename=str(tmp_path / "Corefile"))
    assert msg.endswith("maximum file import depth (10000) exceeded")


def test_fingerprint(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.conf", "log\n")
    main = str(tmp_path / "Corefile")
    base = ". {\n whoami # c1\n import inc.conf\n}\n"
    f1 = fingerprint(parse(base, main, env={}))
    assert len(f1) == 128
    assert fingerprint(parse(base.replace("# c1", "# other comment"), main, env={})) == f1
    assert fingerprint(parse(base.replace(" whoami", "   whoami"), main, env={})) == f1
    assert fingerprint(parse("\n" + base, main, env={})) != f1  # lines moved
    assert fingerprint(parse(base.replace("whoami", "whoami x"), main, env={})) != f1
    inc.write_text("errors\n")
    assert fingerprint(parse(base, main, env={})) != f1


def test_api_surface() -> None:
    import pycoredns.corefile as cf

    for name in ("Token", "ServerBlock", "CorefileError", "parse", "fingerprint", "Dispenser"):
        assert hasattr(cf, name)
    t = Token("x", "f", 1)
    assert t.newlines == 0
    with pytest.raises(AttributeError):
        t.text = "y"  # type: ignore[misc]
    assert os.path.isabs(__file__)


def test_env_value_with_newline_counts_for_same_line() -> None:
    # caddy counts the '\n' of the *substituted* text when deciding "same line", so the next line
    # joins the directive (and a '}' there is "on the directive's line")
    (b,) = p(". {\n log {$V}\n whoami\n\n}", env={"V": "a\nb"})
    assert texts(b.tokens["log"]) == ["log", "a\nb", "whoami"]
    assert b.tokens["log"][1].newlines == 1
    assert perr(". {\n log {$V}\n}", env={"V": "a\nb"}) == (
        "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace"
    )


def test_keys_are_tokens_with_lines() -> None:
    (b,) = p("\n\na.org,\n  b.org {\n}")
    assert [(k.text, k.line, k.file) for k in b.keys] == [("a.org", 3, "Corefile"), ("b.org", 4, "Corefile")]


def test_snippet_from_imported_file_keeps_its_file(tmp_path: Path) -> None:
    write(tmp_path / "snippets.conf", "(opts) {\n  force_tcp\n}\n")
    main = str(tmp_path / "Corefile")
    (b,) = p("import snippets.conf\n. {\n forward . 1.1.1.1 {\n  import opts\n }\n}", filename=main)
    toks = b.tokens["forward"]
    assert [(t.text, t.file, t.line) for t in toks][3:] == [
        ("{", main, 3),
        ("force_tcp", str(tmp_path / "snippets.conf"), 2),
        ("}", main, 5),
    ]
    d = Dispenser(main, toks)
    d.next()
    assert d.remaining_args() == [".", "1.1.1.1"]
    assert d.next_block() and d.val() == "force_tcp" and d.file() == str(tmp_path / "snippets.conf")
    assert not d.next_arg()  # the '}' is in another file: never the same line
    assert not d.next_block()


def test_import_empty_file_before_block(tmp_path: Path) -> None:
    write(tmp_path / "empty.conf", "")
    main = str(tmp_path / "Corefile")
    assert summary(p("import empty.conf\n. {\n whoami\n}", filename=main)) == [(["."], {"whoami": ["whoami"]})]


def test_import_glob_in_subdir_pattern(tmp_path: Path) -> None:
    write(tmp_path / "zones" / "a" / "server.conf", "a.org {\n whoami\n}\n")
    write(tmp_path / "zones" / "b" / "server.conf", "b.org {\n log\n}\n")
    main = str(tmp_path / "Corefile")
    blocks = p("import zones/*/server.conf\n", filename=main)
    assert [texts(b.keys) for b in blocks] == [["a.org"], ["b.org"]]
    assert blocks[1].keys[0].file == str(tmp_path / "zones" / "b" / "server.conf")


def test_import_absolute_and_env_pattern(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.conf", "whoami\n")
    (b,) = p(". {\n import {$INC}\n}", env={"INC": str(inc)})
    assert b.tokens["whoami"][0].file == str(inc)


def test_import_inside_nested_block_from_file(tmp_path: Path) -> None:
    write(tmp_path / "hosts.conf", "1.2.3.4 a.example\nfallthrough\n")
    main = str(tmp_path / "Corefile")
    (b,) = p(". {\n hosts {\n  import hosts.conf\n }\n}", filename=main)
    assert texts(b.tokens["hosts"]) == ["hosts", "{", "1.2.3.4", "a.example", "fallthrough", "}"]


def test_import_only_at_line_start_in_nested_block() -> None:
    # mid-line 'import' inside a block is just an argument
    (b,) = p(". {\n hosts {\n  1.2.3.4 import\n }\n}")
    assert texts(b.tokens["hosts"]) == ["hosts", "{", "1.2.3.4", "import", "}"]


def test_import_file_counts_toward_limit_only_for_files() -> None:
    # 10000 snippet imports are fine; the 10001st is the error
    src = "(s) {\n}\n. {\n" + " import s\n" * 10000 + "}"
    assert summary(p(src)) == [(["."], {})]
    msg = perr("(s) {\n}\n. {\n" + " import s\n" * 10001 + "}")
    assert msg == "Corefile:10004 - Error during parsing: maximum snippet import depth (10000) exceeded"


def test_import_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "dangling.conf").symlink_to(tmp_path / "missing-target")
    main = str(tmp_path / "Corefile")
    link = tmp_path / "dangling.conf"
    assert perr("import dangling.conf\n", filename=main) == (
        f"{main}:1 - Error during parsing: Could not import {link}: open {link}: no such file or directory"
    )


@pytest.mark.parametrize(
    ("src", "msg_end"),
    [
        ('import }{$"', 'File to import not found: }{$"'),
        ("import {$}", "File to import not found: {$}"),
        ("import {%}", "File to import not found: {%}"),
        ("import {$$}", "Import requires a non-empty filepath"),  # variable "$" is unset
        ("import /*/*.txt", "Glob pattern may only contain one wildcard (*), but has others: /*/*.txt"),
        ("import /???/?*?o", "Glob pattern may only contain one wildcard (*), but has others: /???/?*?o"),
        ("import /??", "Glob pattern may only contain one wildcard (*), but has others: /??"),
        ("import /[a-z]", "Glob pattern may only contain one wildcard (*), but has others: /[a-z]"),
    ],
)
def test_caddy_fuzz_imports(src: str, msg_end: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert perr(src) == f"Corefile:1 - Error during parsing: {msg_end}"


def test_import_word_mid_line_in_imported_file(tmp_path: Path) -> None:
    write(tmp_path / "site", "\nexample.com {\n  # 'import' here is only an argument\n  hosts / import password\n}\n")
    (b,) = p("import site", filename=str(tmp_path / "Corefile"))
    assert texts(b.tokens["hosts"]) == ["hosts", "/", "import", "password"]


def test_snippet_defined_before_imported_file_uses_it(tmp_path: Path) -> None:
    write(tmp_path / "site", "example.com {\n  import common\n}\n")
    (b,) = p("(common) {\n  log foo\n}\nimport site\n", filename=str(tmp_path / "Corefile"))
    assert texts(b.keys) == ["example.com"] and texts(b.tokens["log"]) == ["log", "foo"]


def test_snippet_self_import_via_recursion_guard() -> None:
    assert perr("(loop) {\n{ }\nimport loop\n}\nimport loop\n") == (
        "Corefile:4 - Error during parsing: maximum snippet import depth (10000) exceeded"
    )


def test_one_glob_with_many_files_counts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycoredns.corefile.parser as parser_mod

    monkeypatch.setattr(parser_mod, "MAX_FILE_EXPANSIONS", 10)
    for i in range(100):
        (tmp_path / f"part_{i:03d}").write_text("")
    assert p(f"import {tmp_path}/*") == []
