"""Tests of the kubernetes plugin."""
