"""The ops the universal machine executes itself: every row of the op table with a datapath.

The front end asks for this set when it lowers a program (it rewrites the
other ops into helper calls); the prompt check refuses any op outside it.
Adding a datapath to a row (and its method to the interpreter) adds the op.
"""

from __future__ import annotations

from wasmformer.vm.ops import OP_TABLE
from wasmformer.vm.program import Op

MACHINE_OPS: frozenset[Op] = frozenset(row.op for row in OP_TABLE if row.datapath is not None)
