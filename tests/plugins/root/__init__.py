"""Tests of the root plugin."""
