"""wasmformer: a computer inside a transformer."""

__version__ = "0.1.0"
