"""Tests of the autopath plugin."""
