"""Tests of the prometheus plugin."""
