"""Tests of the minimal plugin."""
