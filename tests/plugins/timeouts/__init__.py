"""Tests of the timeouts plugin."""
