import io
import os

# One BLAS thread per process, set before numpy loads: pytest-xdist already runs a worker per core, and the
# dense and hull engines' small matrix-vector products slow down (1.6x for the dense engine, measured) when
# each worker's OpenBLAS also starts a thread per core.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def empty_stdin(monkeypatch):
    """Every test runs with an empty stdin that is not a terminal, as `wasmformer ... < /dev/null` does: a
    program run without --input that reads input gets none (the CLI reads a piped stdin; docs/cli.md)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
