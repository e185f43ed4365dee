import pytest

from tests.explain.programs import TINY_WAT
from wasmformer.engines.base import encode
from wasmformer.explain.steps import decode_steps
from wasmformer.frontend import load_program
from wasmformer.machine.prompt import encode_prompt
from wasmformer.machine.trace import expected_trace
from wasmformer.machine.universal import universal_model


@pytest.fixture(scope="session")
def universal():
    """The universal model, compiled once (and cached on disk across runs)."""
    return universal_model()


@pytest.fixture(scope="session")
def tiny_program():
    return load_program(TINY_WAT)


@pytest.fixture(scope="session")
def tiny_run(tiny_program):
    """The tiny program's run as the expected trace gives it (the model's, token for token: tests/machine)."""
    return decode_steps(encode_prompt(tiny_program), expected_trace(tiny_program).tokens, tiny_program)


@pytest.fixture(scope="session")
def tiny_ids(universal, tiny_run):
    return encode(universal, tiny_run.tokens)
