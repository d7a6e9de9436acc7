"""Tests of the acl plugin."""
