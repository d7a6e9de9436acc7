"""Tests of the chaos plugin."""
