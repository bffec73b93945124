"""Helpers for the test suite (imported by tests; never by localinfer itself)."""
