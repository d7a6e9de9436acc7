"""Tests of the loadbalance plugin."""
