"""Fault injection: misbehaving upstreams, clients and disks; the server keeps answering correctly."""
