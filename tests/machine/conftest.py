import pytest

from wasmformer.machine.universal import universal_model


@pytest.fixture(scope="session")
def universal():
    """The universal model, compiled once (and cached on disk across runs)."""
    return universal_model()
