"""The Dispenser plugins read their tokens with: cursor moves, blocks, arguments and error texts (caddy's own
dispenser tests restated, cursor positions included)."""

from __future__ import annotations

from pathlib import Path

from corefile_helpers import write

from pycoredns.corefile import (
    CorefileError,
    Dispenser,
    Token,
    lex,
    parse,
)


def disp(src: str, directive: str, filename: str = "Corefile") -> Dispenser:
    (b,) = parse(src, filename, directives=None, env={})
    return Dispenser(filename, b.tokens[directive])


def test_dispenser_basic_walk() -> None:
    d = disp(". {\n forward . 1.1.1.1 8.8.8.8 {\n  max_fails 3\n  force_tcp\n }\n}", "forward")
    assert d.val() == "" and d.line() == 0 and d.file() == "Corefile"
    assert d.next() and d.val() == "forward" and d.line() == 2
    assert d.remaining_args() == [".", "1.1.1.1", "8.8.8.8"]
    seen = []
    while d.next_block():
        opt = d.val()
        seen.append((opt, d.remaining_args()))
    assert seen == [("max_fails", ["3"]), ("force_tcp", [])]
    assert d.val() == "}"
    assert not d.next()


def test_dispenser_next_arg_next_line() -> None:
    d = disp(". {\n log a b\n log c\n}", "log")
    assert d.next_arg() and d.val() == "log"  # first next_arg always advances
    assert d.next_arg() and d.val() == "a"
    assert d.next_arg() and d.val() == "b"
    assert not d.next_arg()
    assert not d.next_arg() and d.val() == "b"
    assert d.next_line() and d.val() == "log" and d.line() == 3
    assert not d.next_line()
    assert d.next_arg() and d.val() == "c"
    assert not d.next() and not d.next_arg() and not d.next_line()


def test_dispenser_multiline_token_same_line_logic() -> None:
    d = disp('. {\n template "a\nb" next\n}', "template")
    assert d.next() and d.next_arg() and d.val() == "a\nb" and d.token().newlines == 1
    assert d.next_arg() and d.val() == "next" and d.line() == 3


def test_dispenser_force_tcp_with_brace() -> None:
    # 'force_tcp }' on one line: the option has extra tokens on its line (parser accepts it nested)
    (b,) = parse(". {\n forward . 1.1.1.1 {\n  force_tcp }\n}", "Corefile", directives=None, env={})
    d = Dispenser("Corefile", b.tokens["forward"])
    d.next()
    d.remaining_args()
    assert d.next_block() and d.val() == "force_tcp"
    assert d.next_arg()  # a plugin checking "no args" now fails
    assert (
        str(d.arg_err())
        == "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '}'"
    )


def test_dispenser_subblock_brace_on_next_line() -> None:
    d = disp(". {\n cache 30\n {\n  success 10\n }\n}", "cache")
    assert d.next() and d.remaining_args() == ["30"]
    assert not d.next_block()  # '{' is not on the directive's line
    assert d.next() and d.val() == "{"  # the plugin sees a second instance of the directive


def test_dispenser_empty_block_and_no_block() -> None:
    d = disp(". {\n health {\n }\n}", "health")
    assert d.next() and not d.next_block() and d.val() == "}"
    d = disp(". {\n health :8080\n}", "health")
    assert d.next() and d.next_arg() and not d.next_block() and d.val() == ":8080"


def test_dispenser_remaining_args_stops_at_brace() -> None:
    d = disp(". {\n kubernetes cluster.local {\n  pods insecure\n }\n}", "kubernetes")
    d.next()
    assert d.remaining_arg_tokens()[0].text == "cluster.local"
    assert d.val() == "cluster.local"
    assert d.next_block() and d.val() == "pods"


def test_dispenser_errors() -> None:
    d = disp(". {\n cache 30 {\n  success\n }\n}", "cache", filename="/etc/coredns/Corefile")
    d.next()
    assert str(d.arg_err()) == (
        "/etc/coredns/Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'cache'"
    )
    d.next()
    d.next()
    assert d.val() == "{"
    assert (
        str(d.arg_err()) == "/etc/coredns/Corefile:2 - Error during parsing: Unexpected token '{', expecting argument"
    )
    assert str(d.syntax_err("}")) == "/etc/coredns/Corefile:2 - Syntax error: Unexpected token '{', expecting '}'"
    assert str(d.err("boom")) == "/etc/coredns/Corefile:2 - Error during parsing: boom"
    assert str(d.errf("bad %s: %d", "x", 3)) == "/etc/coredns/Corefile:2 - Error during parsing: bad x: 3"
    assert isinstance(d.arg_err(), CorefileError)


def test_dispenser_file_of_imported_tokens(tmp_path: Path) -> None:
    write(tmp_path / "inc", "cache 0\n")
    (b,) = parse(". {\n import inc\n}", str(tmp_path / "Corefile"), directives=None, env={})
    d = Dispenser(str(tmp_path / "Corefile"), b.tokens["cache"])
    d.next()
    d.next()
    assert str(d.err("x")) == f"{tmp_path}/inc:1 - Error during parsing: x"


def test_dispenser_args_and_nest() -> None:
    d = disp(". {\n log a b\n}", "log")
    d.next()
    assert d.args(2) == ["a", "b"]
    d = disp(". {\n log a\n}", "log")
    d.next()
    assert d.args(2) is None
    d.incr_nest()
    assert d.nesting == 1


def test_errf_go_verbs() -> None:
    d = Dispenser("Corefile", [Token("cache", "Corefile", 7)])
    d.next()
    assert str(d.errf("bad ttl %v: %q (%d%%)", -1, 'x"y', 5)) == (
        'Corefile:7 - Error during parsing: bad ttl -1: "x\\"y" (5%)'
    )
    assert str(d.errf("flag %v", True)).endswith("flag true")


def test_dispenser_next_block_twice_and_nested_options() -> None:
    src = ". {\n hosts a {\n  fallthrough\n }\n hosts b\n}"
    d = disp(src, "hosts")
    blocks = []
    while d.next():
        args = d.remaining_args()
        opts = []
        while d.next_block():
            opts.append(d.val())
        blocks.append((args, opts))
    assert blocks == [(["a"], ["fallthrough"]), (["b"], [])]


def _lexd(src: str) -> Dispenser:
    return Dispenser("Testfile", lex(src, "Testfile"))


def test_caddy_dispenser_next() -> None:
    d = _lexd("host:port\n  dir1 arg1\n  dir2 arg2 arg3\n  dir3")
    assert d.val() == ""
    for cursor, val in enumerate(["host:port", "dir1", "arg1", "dir2", "arg2", "arg3", "dir3"]):
        assert d.next() and d.cursor == cursor and d.val() == val
    assert not d.next() and d.cursor == 6 and d.val() == "dir3"


def test_caddy_dispenser_next_line() -> None:
    d = _lexd("host:port\n  dir1 arg1\n  dir2 arg2 arg3")
    assert d.next_line() and (d.cursor, d.val()) == (0, "host:port")
    assert d.next_line() and (d.cursor, d.val()) == (1, "dir1")
    assert not d.next_line() and d.cursor == 1
    d.next()
    assert d.next_line() and (d.cursor, d.val()) == (3, "dir2")
    d.next()
    assert not d.next_line() and d.val() == "arg2"
    d.next()
    assert not d.next_line() and d.val() == "arg3"


def test_caddy_dispenser_next_block() -> None:
    d = _lexd("foobar1 {\n  sub1 arg1\n  sub2\n}\nfoobar2 {\n}")
    assert not d.next_block() and (d.cursor, d.nesting) == (-1, 0)
    d.next()
    assert d.next_block() and (d.cursor, d.nesting) == (2, 1)
    assert d.next_block() and (d.cursor, d.nesting) == (3, 1)
    assert d.next_block() and (d.cursor, d.nesting) == (4, 1)
    assert not d.next_block() and (d.cursor, d.nesting) == (5, 0)
    d.next()
    assert not d.next_block() and (d.cursor, d.nesting) == (8, 0)  # empty block: as if absent


def test_caddy_dispenser_next_block_stops_at_eof() -> None:
    d = _lexd("foobar {\n  sub1 arg1")
    assert d.next() and d.next_block()
    steps = 0
    while d.next_block():
        steps += 1
        assert steps < 10
    assert d.val() == "arg1"


def test_caddy_dispenser_remaining_args() -> None:
    d = _lexd("dir1 arg1 arg2 arg3\n dir2 arg4 arg5\n dir3 arg6 { arg7\n dir4")
    d.next()
    assert d.remaining_args() == ["arg1", "arg2", "arg3"]
    d.next()
    assert d.remaining_args() == ["arg4", "arg5"]
    d.next()
    assert d.remaining_args() == ["arg6"]
    d.next()
    d.next()
    d.next()
    assert d.val() == "dir4" and d.remaining_args() == []


def test_caddy_dispenser_arg_err_err() -> None:
    d = _lexd("dir1 {\n  }\n  dir2 arg1 arg2")
    d.cursor = 1
    assert str(d.arg_err()) == "Testfile:1 - Error during parsing: Unexpected token '{', expecting argument"
    d.cursor = 5
    assert "arg2" in str(d.arg_err())
    assert str(d.err("foobar")) == "Testfile:3 - Error during parsing: foobar"
