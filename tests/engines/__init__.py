"""Tests of wasmformer.engines and their shared helpers."""
