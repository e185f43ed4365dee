"""Tests of wasmformer.compiler and their shared helpers."""
