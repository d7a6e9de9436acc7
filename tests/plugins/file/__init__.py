"""Tests of the file plugin."""
