"""Stablewatch test suite."""
