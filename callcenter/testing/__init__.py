"""Test helpers that are part of the public API (like treq.testing)."""
