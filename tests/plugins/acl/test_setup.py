"""acl: Corefile parsing and its errors (broken-Corefile rows, config errors, network files)."""

from __future__ import annotations

import pytest
from broken_corefiles import block, check_broken, check_message, check_must_fail, load
from conftest import running

from pycoredns.instance import StartupError

BROKEN: list[str] = [
    'acl {\n bogus\n }',
    'acl {\n block type BOGUS\n }',
    'acl {\n block type\n }',
    'acl {\n block net 10.0.0.0/33\n }',
    'acl {\n block net 300.1.1.1\n }',
    'acl {\n block net ::1/129\n }',
    'acl {\n block net\n }',
    'acl {\n block file\n }',
    'acl {\n block file /nonexistent\n }',
    'acl {\n allow colour red\n }',
    'acl {\n block net 10.0.0.0/8 type\n }',
    'acl bad..zone',
    'acl {\n block net 1.2.3.4/-1\n }',
    'acl {\n block type a\n }',
    'acl {\n block file /tmp/x\x00y\n }',
    'acl {\n block net ""\n }',
    'acl {\n block type ""\n }',
    'acl ""',
    'acl {\n block type TYPE²\n }',
    'acl {\n block net 10.0.0.0/²\n }',
    'acl {\n block type TYPE99999999\n }',
]


MUST_FAIL: list[str] = [
    ' acl {\n  bogus\n }',
    ' acl {\n  block net 10.0.0.0/33\n }',
]


def test_broken_variants_give_one_clean_line() -> None:
    check_broken("acl", BROKEN)


@pytest.mark.parametrize("body", MUST_FAIL)
def test_must_fail(body: str) -> None:
    check_must_fail("acl", body)


async def test_acl_networks_file_with_garbage(tmp_path):
    p = tmp_path / "nets"
    p.write_bytes(b"10.0.0.0/8\nnot-a-cidr\n")
    msg = load(block(f" acl {{\n  block file {p}\n }}\n whoami"))
    assert msg is not None
    check_message("acl", msg)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  permit", "unexpected token 'permit'; expect 'allow', 'block', 'filter' or 'drop'"),
        ("  block type", "no token specified in 'type' section"),
        ("  block type FOO", "unexpected token 'FOO'; expect legal QTYPE"),
        ("  block net 10.0.0.300", "illegal CIDR notation '10.0.0.300/32'"),
        ("  block zone x", "unexpected token 'x'; expect 'type | net | file'"),  # c.Val() after the tokens
    ],
)
async def test_config_errors(body, message):
    with pytest.raises(StartupError) as ei:
        async with running(f". {{\n acl {{\n{body}\n }}\n}}\n"):
            pass
    assert str(ei.value).startswith("plugin/acl: Corefile:")
    assert str(ei.value).endswith("Error during parsing: " + message)
