"""Tests of the tls plugin and tls:// listeners."""
