"""Tests of wasmformer.graph and their shared helpers."""
