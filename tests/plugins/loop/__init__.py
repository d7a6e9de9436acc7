"""Tests of the loop plugin."""
