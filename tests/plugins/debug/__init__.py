"""Tests of the debug plugin."""
