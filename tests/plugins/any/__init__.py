"""Tests of the any plugin."""
