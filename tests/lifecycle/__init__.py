"""Lifecycle tests: no query lost through upgrades, shutdowns, reloads and worker restarts."""
