"""The compiler's version, part of every model cache key (its own module so the cache can read it without importing the passes)."""

# Bump it whenever the compiler's output for a graph may change.
COMPILER_VERSION = "wasmformer-compiler/2"
