"""Tests of the reload plugin."""
