"""Tests of the dns64 plugin."""
