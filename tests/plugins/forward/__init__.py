"""Tests of the forward plugin (the waiting path by continuation)."""
