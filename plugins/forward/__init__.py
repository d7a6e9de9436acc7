"""forward: proxy queries to upstream resolvers over UDP, TCP, DNS-over-TLS or DNS-over-HTTPS (CoreDNS `forward`).

    forward FROM TO... {
        except ZONES...; force_tcp; prefer_udp; expire DUR; max_fails N; health_check DUR [no_rec] [domain FQDN]
        policy random|round_robin|sequential; max_concurrent N; tls [CERT KEY [CA]] | [CA]; tls_servername NAME
        next RCODE...; failover RCODE...; failfast_all_unhealthy_upstreams; max_connect_attempts N
        read_timeout DUR; max_idle_conns N; doh_method GET|POST
    }

Each `forward` line is its own handler; they chain in Corefile order. A forwarded query is a
continuation, not a task (`handler.Exchange`): the upstream sockets' readers complete it. The success
path does no DNS parse beyond a validating walk of the reply: the upstream's bytes go to the client
with the client's ID. Parsing is in `setup.py`, upstream channels in `proxy.py` (DoH's in `doh.py`);
README.md says where this differs from CoreDNS.
"""

from __future__ import annotations

from .handler import DEADLINE, POLICIES, Exchange, Forward, Policy, RandomPolicy, RoundRobinPolicy
from .setup import MAX_UPSTREAMS, parse_option, parse_stanza, parse_targets, read_resolv_conf, setup

__all__ = [
    "DEADLINE",
    "MAX_UPSTREAMS",
    "POLICIES",
    "Exchange",
    "Forward",
    "Policy",
    "RandomPolicy",
    "RoundRobinPolicy",
    "parse_option",
    "parse_stanza",
    "parse_targets",
    "read_resolv_conf",
    "setup",
]
