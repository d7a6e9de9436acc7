"""Tests of the hosts plugin."""
