"""Test oracles: independent ways to get the expected answer (never on the run path)."""
