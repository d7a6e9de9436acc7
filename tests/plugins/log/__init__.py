"""Tests of the log plugin."""
