"""Tests of the whoami plugin."""
