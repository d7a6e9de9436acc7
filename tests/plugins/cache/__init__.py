"""Tests of the cache plugin."""
