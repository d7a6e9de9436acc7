"""Tests of the bind plugin."""
