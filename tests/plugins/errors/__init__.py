"""Tests of the errors plugin."""
