"""Tests of the view plugin."""
