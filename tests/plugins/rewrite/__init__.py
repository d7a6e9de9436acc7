"""Tests of the rewrite plugin."""
