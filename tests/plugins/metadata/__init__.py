"""Tests of the metadata plugin."""
