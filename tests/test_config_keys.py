"""Server-block key normalisation (reference §1.3 and the §7 observations)."""

from __future__ import annotations

import pytest

from pycoredns.config import (
    ZoneAddress,
    fqdn,
    is_domain_name,
    normalize_exact,
    normalize_key,
    normalize_keys,
    origins_from_args_or_keys,
    parse_transport,
    reverse_zones,
    split_host_port,
)
from pycoredns.exceptions import ServerBlockKeyError

KEYS_OK = [
    # (key, canonical keys)
    (".", ["dns://.:53"]),
    (".:53", ["dns://.:53"]),
    ("dns://.:53", ["dns://.:53"]),
    ("dns://.", ["dns://.:53"]),
    ("example.org", ["dns://example.org.:53"]),
    ("example.org.", ["dns://example.org.:53"]),
    ("Example.ORG", ["dns://example.org.:53"]),
    ("example.org:1053", ["dns://example.org.:1053"]),
    ("example.org:01053", ["dns://example.org.:1053"]),  # re-formatted
    ("example.org:+53", ["dns://example.org.:53"]),  # Go's Atoi takes a sign
    ("example.org:99999", ["dns://example.org.:99999"]),  # no range check here
    ("tls://example.org", ["tls://example.org.:853"]),
    ("tls://example.org:5353", ["tls://example.org.:5353"]),
    ("quic://.", ["quic://.:853"]),
    ("grpc://.", ["grpc://.:443"]),
    ("https://.", ["https://.:443"]),
    ("https3://.", ["https3://.:443"]),
    ("10.0.0.0/24", ["dns://0.0.10.in-addr.arpa.:53"]),
    ("10.0.0.0/8", ["dns://10.in-addr.arpa.:53"]),
    ("10.0.0.0/16", ["dns://0.10.in-addr.arpa.:53"]),
    ("10.1.2.3/32", ["dns://3.2.1.10.in-addr.arpa.:53"]),
    ("10.1.2.3/24", ["dns://2.1.10.in-addr.arpa.:53"]),  # host bits masked off
    ("0.0.0.0/0", ["dns://in-addr.arpa.:53"]),
    ("10.0.0.0/24:1053", ["dns://0.0.10.in-addr.arpa.:1053"]),
    ("fd00::/64", ["dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:53"]),
    ("fd00::/8", ["dns://d.f.ip6.arpa.:53"]),
    ("FD00::/16", ["dns://0.0.d.f.ip6.arpa.:53"]),
    ("fd00::/64:1053", ["dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:1053"]),
    ("example.org:P", ["dns://example.org:p.:53"]),  # not a port: part of the (liberal) name
    ("example.org:53,example.net:53", ["dns://example.org:53,example.net.:53"]),  # §7: one odd key
    ("10.0.0.0/33", ["dns://10.0.0.0/33.:53"]),  # not a CIDR: a (liberal) name
    ("foo_bar.example", ["dns://foo_bar.example.:53"]),
    ("unix://.", ["unix://.:"]),  # parsed like CoreDNS; no server serves it
]


@pytest.mark.parametrize(("key", "want"), KEYS_OK)
def test_normalize_key(key: str, want: list[str]) -> None:
    assert [z.key() for z in normalize_key(key)] == want


def test_cidr_17_gives_128_zones() -> None:
    zs = normalize_key("10.0.0.0/17")
    assert len(zs) == 128
    assert zs[0].zone == "0.0.10.in-addr.arpa." and zs[-1].zone == "127.0.10.in-addr.arpa."
    assert {z.port for z in zs} == {53}


def test_cidr_27_gives_32_zones() -> None:
    zs = normalize_key("10.0.0.0/27")
    assert [z.zone for z in zs] == [f"{i}.0.0.10.in-addr.arpa." for i in range(32)]


def test_cidr_v6_nibble_split() -> None:
    zs = normalize_key("fd00::/63")
    assert [z.zone for z in zs] == [
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    ]
    assert len(normalize_key("10.0.0.0/9")) == 128
    assert reverse_zones("192.168.0.0/23") == ["0.168.192.in-addr.arpa.", "1.168.192.in-addr.arpa."]


KEYS_BAD = [
    # (key, message after "error inspecting server blocks: ")
    ("dns://", 'expecting data after last colon: ""'),
    (":53", "zone is not a valid domain name: "),
    ("", 'expecting data after last colon: ""'),
    ("example.org:", 'expecting data after last colon: "example.org:"'),
    ("tls://example.org:", 'expecting data after last colon: "example.org:"'),
    ("a..b", "zone is not a valid domain name: a..b"),
    (".example.org", "zone is not a valid domain name: .example.org"),
    ("a" * 64 + ".org", "zone is not a valid domain name: " + "a" * 64 + ".org"),
    ("::/0", "invalid CIDR ::/0"),
    ("0::/64", "invalid CIDR 0::/64"),
    ("::1/128:1053", "invalid CIDR ::1/128"),
    (("a" * 60 + ".") * 4 + "abcdefghijklmnop", "specified zone is too long: 260 > 255"),
]


@pytest.mark.parametrize(("key", "msg"), KEYS_BAD)
def test_normalize_key_errors(key: str, msg: str) -> None:
    with pytest.raises(ServerBlockKeyError) as ei:
        normalize_key(key)
    assert str(ei.value) == f"error inspecting server blocks: {msg}"
    assert ei.value.msg == msg


def test_dns_port_flag_only_for_plain_dns_keys() -> None:
    assert normalize_key(".", 1053)[0].key() == "dns://.:1053"
    assert normalize_key("dns://.", 1053)[0].key() == "dns://.:1053"
    assert normalize_key(".:53", 1053)[0].key() == "dns://.:53"  # explicit port wins
    assert normalize_key("tls://.", 1053)[0].key() == "tls://.:853"
    assert normalize_key("https://.", 1053)[0].key() == "https://.:443"
    assert normalize_key("10.0.0.0/24", 1053)[0].port == 1053


def test_zone_address_fields() -> None:
    (z,) = normalize_key("tls://Example.Org:8853")
    assert z == ZoneAddress("tls", "example.org.", 8853)
    assert str(z) == "tls://example.org.:8853"
    assert hash(z) == hash(ZoneAddress("tls", "example.org.", 8853))


def test_normalize_keys_expands_in_order() -> None:
    got = [z.key() for z in normalize_keys(["example.org", "10.0.0.0/23", "."])]
    assert got == [
        "dns://example.org.:53",
        "dns://0.0.10.in-addr.arpa.:53",
        "dns://1.0.10.in-addr.arpa.:53",
        "dns://.:53",
    ]


def test_helpers() -> None:
    assert parse_transport("https3://x") == ("https3", "x")
    assert parse_transport("https://x") == ("https", "x")
    assert parse_transport("udp://x") == ("dns", "udp://x")
    assert split_host_port("example.org:53") == (["example.org"], "53")
    assert split_host_port("example.org") == (["example.org"], "")
    with pytest.raises(ValueError, match="expecting data after last colon"):
        split_host_port("x:")
    assert fqdn("a") == "a." and fqdn("a.") == "a." and fqdn("a\\.") == "a\\.." and fqdn("a\\\\.") == "a\\\\."
    assert is_domain_name(".") and is_domain_name("a.b") and is_domain_name("a\\.b") and is_domain_name("ȶ")
    assert not is_domain_name("") and not is_domain_name("..") and not is_domain_name("a..")
    assert is_domain_name("a" * 63) and not is_domain_name("a" * 64)


def test_plugin_zone_helpers() -> None:
    assert normalize_exact("Example.ORG:53") == ["example.org."]
    assert normalize_exact("dns://10.0.0.0/23") == ["0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."]
    assert normalize_exact("a..b") == []
    keys = ["dns://cluster.local.:53", "dns://in-addr.arpa.:53"]
    assert origins_from_args_or_keys([], keys) == ["cluster.local.", "in-addr.arpa."]
    assert origins_from_args_or_keys(["Cluster.Local", "a..b", "10.0.0.0/24"], keys) == [
        "cluster.local.",
        "0.0.10.in-addr.arpa.",
    ]


def test_rfc1035_warning() -> None:
    from pycoredns.config import follows_rfc1035, rfc1035_warning

    assert follows_rfc1035(".") and follows_rfc1035("example.org.") and follows_rfc1035("a-b.c1.")
    assert follows_rfc1035("0.0.10.in-addr.arpa.") and follows_rfc1035("d.f.ip6.arpa.")
    assert not follows_rfc1035("foo_bar.example.") and not follows_rfc1035("1abc.org.")
    assert rfc1035_warning("example.org.") is None
    assert rfc1035_warning("foo_bar.example.") == (
        'Warning: Domain "foo_bar.example." does not follow RFC1035 preferred syntax'
    )
