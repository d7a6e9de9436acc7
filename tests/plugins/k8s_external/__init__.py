"""Tests of the k8s_external plugin."""
