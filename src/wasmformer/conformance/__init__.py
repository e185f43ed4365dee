"""Conformance harnesses: the official WebAssembly spec scripts through the front end and the VM (tests and tools only)."""
