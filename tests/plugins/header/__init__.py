"""Tests of the header plugin."""
