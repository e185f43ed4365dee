"""The VM: the program the front end produces and the machine executes, and its instruction table.

    program.py  Op, Instr, TrapReason, VMProgram
    ops.py      OP_TABLE: one row per instruction with every fact about it
    errors.py   ProgramError (a refusal) and Trap (the end of a run)

docs/vm-program.md describes the semantics; the reference VM
(wasmformer.oracles.refvm) executes them.
"""

from wasmformer.vm.errors import ProgramError, Trap
from wasmformer.vm.program import Instr, Op, TrapReason, VMProgram

__all__ = ["Instr", "Op", "ProgramError", "Trap", "TrapReason", "VMProgram"]
