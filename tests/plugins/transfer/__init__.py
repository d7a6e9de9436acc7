"""Tests of the transfer plugin."""
