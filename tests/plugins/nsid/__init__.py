"""Tests of the nsid plugin."""
