import io

import pytest


@pytest.fixture(autouse=True)
def empty_stdin(monkeypatch):
    """Every test runs with an empty stdin that is not a terminal, as `wasmformer ... < /dev/null` does: a
    program run without --input that reads input gets none (the CLI reads a piped stdin; docs/cli.md)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
