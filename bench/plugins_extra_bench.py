"""file and local answers (issue 17) side by side with another server: qps and CPU µs per answer.

    python3 -m bench.plugins_extra_bench --reference /work/ref/bin/coredns [--seconds 10]

Both servers serve the same zone file and `local`, each pinned to core 0 in turn, dnsperf on core 1
(bench/sidebyside.py). Not a test: numbers depend on the machine; quote the load average with them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.common import free_port
from bench.sidebyside import Server, load_average, run_row

ZONE = """$TTL 3600
$ORIGIN example.org.
@ IN SOA ns1 admin 1 7200 3600 1209600 300
  IN NS ns1
  IN MX 10 mail
ns1 A 192.0.2.53
web A 192.0.2.10
web AAAA 2001:db8::10
www CNAME web
mail A 192.0.2.25
*.wild A 192.0.2.77
"""
QUERIES = ["web.example.org A", "www.example.org A", "example.org MX", "nope.example.org A",
           "x.wild.example.org A", "web.example.org TXT", "localhost A", "1.0.0.127.in-addr.arpa PTR"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="the other server's binary (takes -conf FILE)")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="plugins-extra-bench-"))
    (d / "db").write_text(ZONE)
    data = d / "queries.txt"
    data.write_text("\n".join(QUERIES) + "\n")
    print(f"load average before: {load_average()}")
    rows = {}
    for label, cmd in (("pycoredns", [sys.executable, "-m", "pycoredns"]), ("reference", [args.reference])):
        port, ready = free_port(), free_port()
        conf = d / f"Corefile.{label}"
        conf.write_text(f".:{port} {{\n ready 127.0.0.1:{ready}\n local\n file {d / 'db'} example.org\n}}\n")
        with Server(label, [*cmd, "-conf", str(conf)], port, f"http://127.0.0.1:{ready}/ready",
                    log=d / f"{label}.log") as s:
            s.wait_ready(60)
            rows[label] = run_row(s, str(data), args.seconds)
        r = rows[label]
        print(f"{label:10s} qps {r.get('qps', 0):9.0f}  cpu/answer {r.get('cpu_us', float('nan')):6.1f} us  "
              f"lost {r.get('lost')}  rcodes {r.get('rcodes')}")
    p, c = rows["pycoredns"], rows["reference"]
    if "cpu_us" in p and "cpu_us" in c:
        print(f"ratio pycoredns/reference: qps {p['qps'] / c['qps']:.2f}, "
              f"cpu per answer {p['cpu_us'] / c['cpu_us']:.2f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
