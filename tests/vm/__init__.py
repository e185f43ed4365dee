"""Tests of wasmformer.vm: the op table."""
