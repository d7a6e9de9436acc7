"""Tests of the template plugin."""
