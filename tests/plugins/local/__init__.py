"""Tests of the local plugin."""
