"""Tests of the bufsize plugin."""
