"""Tests of the ready plugin."""
