"""The VM's two kinds of failure: a program that cannot run, and a trap that ends a run.

``ProgramError`` is a refusal shown to the user as one line (a malformed or
unsupported program, an input too large, a jump outside the code); the front
end's ``FrontendError`` is one. ``Trap`` is raised by an instruction's value
function (division by zero, ...) and caught by the interpreters, for which a
trap is a result of the run, not an error.
"""

from __future__ import annotations

from wasmformer.errors import WasmformerError
from wasmformer.vm.program import TrapReason


class ProgramError(WasmformerError):
    """A program or input the VM refuses, with a human message."""


class Trap(Exception):
    """An instruction trapped; ``reason`` says why and ``address`` is set for memory accesses."""

    def __init__(self, reason: TrapReason, address: int | None = None):
        super().__init__(reason.name)
        self.reason = reason
        self.address = address
