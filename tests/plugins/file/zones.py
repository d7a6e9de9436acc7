"""The example.org zone the file (and transfer) tests serve; answers were compared with CoreDNS 1.14.7."""

from __future__ import annotations

from pathlib import Path

ZONE = """$TTL 3600
$ORIGIN example.org.
@   IN  SOA ns1 admin (
        2024010101 ; serial
        7200 3600 1209600 300 )
    IN  NS  ns1
    IN  NS  ns2.example.net.
    IN  MX  10 mail
    IN  MX  20 mail2.example.net.
ns1 IN A 192.0.2.53
www 300 IN CNAME web
web  A 192.0.2.10
     AAAA 2001:db8::10
chain CNAME www
ext CNAME www.example.net.
*.wild TXT "hello" "two"
*.wild A 192.0.2.77
_sip._tcp SRV 10 20 5060 sip
sip A 192.0.2.60
mail A 192.0.2.25
mail AAAA 2001:db8::25
sub NS ns.sub
ns.sub A 192.0.2.99
a.b.c A 192.0.2.1
$INCLUDE inc.example.org
"""
INCLUDED = "included 60 A 192.0.2.123\n"
SOA = "example.org. 3600 IN SOA ns1.example.org. admin.example.org. 2024010101 7200 3600 1209600 300"
NS = ["example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.net."]


def write_zone(d: Path, serial: int = 2024010101, extra: str = "") -> Path:
    (d / "inc.example.org").write_text(INCLUDED)
    path = d / "db.example.org"
    path.write_text(ZONE.replace("2024010101", str(serial)) + extra)
    return path


def texts(section) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]
