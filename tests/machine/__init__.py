"""Tests of wasmformer.machine and their shared helpers."""
