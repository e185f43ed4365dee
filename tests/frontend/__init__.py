"""Tests of wasmformer.frontend and their shared helpers."""
