"""One wasm function body -> relocatable VM code with absolute-jump control flow.

The operand stack of the VM is the wasm operand stack; only locals are per
frame. Lowering tracks the stack height statically (the module is validated,
so every height is known) and turns each structured construct into jumps:

    block ... end          the label is the position after ``end``
    loop ... end           the label is the loop's first instruction
    if ... else ... end    JUMP_IF_ZERO to the else part, JUMP over it at ``else``
    br / br_if / br_table  a jump to the label, after discarding the values that
                           lie between the branch's results and the label's base
                           height (results saved in scratch locals, DROPs, restored)
    return                 the same discarding down to height 0, then RETURN

A function starts with a prologue that pops its parameters into locals 0..p-1
(LOCAL_SET in reverse order) and ends with RETURN. Scratch locals live after
the declared locals. Code after an unconditional branch is not emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from wasmformer.frontend.assemble import Code, Label, Symbol, emit_index_search, index_runs
from wasmformer.frontend.decode import FuncType, Instruction, Module, decode_body
from wasmformer.frontend.errors import FrontendError
from wasmformer.vm.ops import OP_TABLE, Immediate, OpSpec
from wasmformer.vm.program import Instr, Op, TrapReason

I32_MODULUS = 1 << 32

# The wasm instructions that become exactly one VM op, by what their immediate is (the op table's
# ``wasm`` column); i32.const has a handler of its own (constant folding of multiplications).
_ROWS = [row for row in OP_TABLE if row.wasm is not None and row.op is not Op.CONST]
SIMPLE_OPS: dict[str, OpSpec] = {row.wasm: row for row in _ROWS if row.immediate is Immediate.NONE}
MEMORY_OPS: dict[str, OpSpec] = {row.wasm: row for row in _ROWS if row.immediate is Immediate.OFFSET}
VARIABLE_OPS: dict[str, OpSpec] = {row.wasm: row for row in _ROWS
                                   if row.immediate in (Immediate.LOCAL, Immediate.GLOBAL)}

# Bulk memory instructions lowered to a call of a helper subroutine (wasm name -> helper export name).
# Each pops 3 operands; the lowering pushes the memory window as a 4th argument. data.drop lowers to
# nothing: memory.init, the only reader of a passive segment, is refused, so dropping one is unobservable.
BULK_MEMORY_HELPERS = {"memory.fill": "memory_fill", "memory.copy": "memory_copy"}
BULK_MEMORY_OPERANDS = 3

UNSUPPORTED_BY_PREFIX = [  # (name prefix, why), first match wins
    ("i32.wrap_i64", "no i64 yet"), ("i32.trunc", "no floating point"), ("i32.reinterpret", "no floating point"),
    ("i64.", "no i64 yet"), ("f32.", "no floating point"), ("f64.", "no floating point"),
    ("memory.init", "no passive data segments"), ("table.", "no reference types"), ("elem.drop", "no reference types"),
    ("ref.", "no reference types"), ("return_call", "no tail calls"),
]


def to_i32(value: int) -> int:
    """The signed 32-bit value with the same low 32 bits."""
    value %= I32_MODULUS
    return value - I32_MODULUS if value >= I32_MODULUS // 2 else value


@dataclass
class Environment:
    """What a function body needs from the whole program while it is lowered."""
    module: Module
    memory_limit: int  # accesses at or beyond this address trap
    memory_pages: int  # the fixed memory size reported by memory.size
    function_symbol: Callable[[int], Symbol | Instr]  # an Instr for imports (PUTCHAR, GETCHAR, TRAP)
    global_slot: Callable[[int, Callable], int]  # wasm global -> VM global; refuses via the 2nd argument
    op_target: Callable[[Op], Symbol | None]  # None: native; else the helper that replaces the op
    dispatch_symbol: Callable[[int, int], Symbol]  # (type index, table index) -> call_indirect dispatcher
    helper_symbol: Callable[[str], Symbol]  # a helper subroutine by its export name (its use is recorded)
    name_prefix: str = ""  # for function names in messages and origins
    native_ops: frozenset = frozenset()  # the ops the machine executes itself (a pure query; op_target counts)


@dataclass
class _Frame:
    kind: str  # "function", "block", "loop" or "if"
    base: int  # operand height below the frame's parameters
    params: int
    results: int
    target: Label  # where a branch to this frame goes
    end: Label
    else_label: Label | None = None
    dead: bool = False  # the whole frame is unreachable code
    unreachable: bool = False  # the rest of the frame is unreachable

    @property
    def arity(self) -> int:
        return self.params if self.kind == "loop" else self.results


@dataclass
class LoweredFunction:
    code: Code
    calls: set[int] = field(default_factory=set)  # function indices called directly
    indirect_types: set[tuple[int, int]] = field(default_factory=set)  # call_indirect (type index, table)
    frame_size: int = 0  # params + declared locals + scratch locals


def check_i32_signature(module: Module, index: int, signature: FuncType) -> None:
    for kind in signature.params + signature.results:
        if kind != "i32":
            raise FrontendError(f"{module.where(index)}: type {signature} is not supported "
                                f"({type_reason(kind)}; only i32 values)")


def type_reason(kind: str) -> str:
    if kind.startswith("(ref"):
        return "no typed references (function-references / GC proposals)"
    return {"i64": "no i64 yet", "f32": "no floating point", "f64": "no floating point",
            "v128": "no SIMD"}.get(kind, "no reference types")


def non_adjacent_form(constant: int) -> list[tuple[int, int]]:
    """C mod 2^32 as sum of digit * 2^shift with digits +-1, no two adjacent: [(shift, digit), ...]."""
    value, shift, digits = constant & 0xFFFFFFFF, 0, []
    while value and shift < 32:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value = 1 mod 4, -1 when 3 mod 4
            digits.append((shift, digit))
            value -= digit
        value >>= 1
        shift += 1
    return digits


def lower_function(environment: Environment, index: int) -> LoweredFunction:
    return _FunctionLowering(environment, index).run()


class _FunctionLowering:
    def __init__(self, environment: Environment, index: int):
        self.env = environment
        self.module = environment.module
        self.index = index
        self.function = self.module.defined_function(index)
        self.signature = self.module.function_type(index)
        self.where = self.module.where(index)
        self.code = Code(environment.name_prefix + self.module.function_name(index))
        self.result = LoweredFunction(self.code)
        self.frames: list[_Frame] = []
        self.height = 0
        self.position = 0
        self.locals_count = len(self.signature.params) + self._declared_locals()
        self.scratch_used = 0
        self.handlers = {
            "nop": self._nop, "unreachable": self._unreachable, "i32.const": self._i32_const,
            "memory.size": self._memory_size, "memory.grow": self._memory_grow,
            "call": self._call, "call_indirect": self._call_indirect,
            "block": self._block, "loop": self._loop, "if": self._if, "else": self._else, "end": self._end,
            "br": self._br, "br_if": self._br_if, "br_table": self._br_table, "return": self._return,
            "memory.fill": self._bulk_memory, "memory.copy": self._bulk_memory, "data.drop": self._nop,
        }

    def _declared_locals(self) -> int:
        total = 0
        for count, kind in self.function.local_types:
            if count and kind != "i32":
                raise FrontendError(f"{self.where}: locals of type {kind} are not supported ({type_reason(kind)})")
            total += count
        return total

    def run(self) -> LoweredFunction:
        check_i32_signature(self.module, self.index, self.signature)
        params = len(self.signature.params)
        for local in reversed(range(params)):
            self.code.emit(Op.LOCAL_SET, local)
        end = Label()
        self.frames.append(_Frame("function", 0, 0, len(self.signature.results), end, end))
        for position, instruction in enumerate(decode_body(self.module, self.function)):
            self.position = position
            self.code.origin = (self.code.name, position)
            self._instruction(instruction)
        self.result.frame_size = self.locals_count + self.scratch_used
        return self.result

    # --- errors and bookkeeping -------------------------------------------------

    def fail(self, message: str) -> FrontendError:
        return FrontendError(f"{self.where}, instruction {self.position}: {message}")

    def _scratch(self, slot: int) -> int:
        self.scratch_used = max(self.scratch_used, slot + 1)
        return self.locals_count + slot

    def _block_type(self, block_type) -> tuple[int, int]:
        if block_type is None:
            return 0, 0
        if isinstance(block_type, str):
            self._require_i32(block_type)
            return 0, 1
        signature = self.module.types[block_type]
        for kind in signature.params + signature.results:
            self._require_i32(kind)
        return len(signature.params), len(signature.results)

    def _require_i32(self, kind: str) -> None:
        if kind != "i32":
            raise self.fail(f"a block of type {kind} is not supported ({type_reason(kind)})")

    # --- dispatch on the instruction ----------------------------------------------

    def _instruction(self, instruction: Instruction) -> None:
        name = instruction.name
        frame = self.frames[-1]
        if frame.unreachable and name not in ("block", "loop", "if", "else", "end"):
            return
        handler = self.handlers.get(name)
        if name in SIMPLE_OPS:
            self._simple(SIMPLE_OPS[name])
        elif name in MEMORY_OPS:
            self._memory(instruction, MEMORY_OPS[name])
        elif name in VARIABLE_OPS:
            self._variable(instruction, VARIABLE_OPS[name])
        elif handler is not None:
            handler(instruction)
        else:
            raise self.fail(f"{name} is not supported ({self._unsupported_reason(name)})")

    @staticmethod
    def _unsupported_reason(name: str) -> str:
        for prefix, reason in UNSUPPORTED_BY_PREFIX:
            if name.startswith(prefix):
                return reason
        return "not in the machine's instruction set"

    def _simple(self, row: OpSpec) -> None:
        if row.op is Op.MUL and self._multiply_by_constant():
            self.height -= 1
            return
        helper = self.env.op_target(row.op)
        self.code.emit(Op.CALL, helper) if helper is not None else self.code.emit(row.op)
        self.height += row.pushes - row.pops

    def _memory(self, instruction: Instruction, row: OpSpec) -> None:
        offset = instruction.args[1]
        if offset + row.width > self.env.memory_limit:
            # Every address plus this offset is out of the window: the access always traps.
            for _ in range(row.pops):
                self.code.emit(Op.DROP)
            self.code.emit(Op.TRAP, TrapReason.OUT_OF_BOUNDS_MEMORY)
        else:
            self.code.emit(row.op, offset)
        self.height += row.pushes - row.pops

    def _variable(self, instruction: Instruction, row: OpSpec) -> None:
        index = instruction.args[0]
        if row.immediate is Immediate.GLOBAL:
            index = self.env.global_slot(index, self.fail)
        self.code.emit(row.op, index)
        self.height += row.pushes - row.pops

    # --- plain instructions ----------------------------------------------------------

    def _nop(self, instruction: Instruction) -> None:
        pass

    def _unreachable(self, instruction: Instruction) -> None:
        self.code.emit(Op.TRAP, TrapReason.UNREACHABLE)
        self.frames[-1].unreachable = True

    def _i32_const(self, instruction: Instruction) -> None:
        self.code.emit(Op.CONST, to_i32(instruction.args[0]))
        self.height += 1
        self.last_const = (self.position, len(self.code))

    def _multiply_by_constant(self) -> bool:
        """x * C right after i32.const C, as shifts and adds/subs of x when the machine shifts natively.

        A helper call costs ~100-700 steps; this costs 2 + 4 per nonzero digit of C
        in non-adjacent form (at most 17). Nothing may lie between the const and
        the mul (no label), so the const is taken back out of the code.
        """
        position, length = getattr(self, "last_const", (-1, -1))
        if position != self.position - 1 or length != len(self.code) or self.code.labels_at(length):
            return False
        native = self.env.native_ops
        if Op.MUL in native or not {Op.SHL, Op.ADD, Op.SUB} <= native:
            return False  # mul is native already, or the shifts it would need are not
        _, constant = self.code.items.pop()
        self.code.origins.pop()
        scratch = self._scratch(0)  # free between wasm instructions
        self.code.emit(Op.LOCAL_SET, scratch)
        self.code.emit(Op.CONST, 0)
        for shift, digit in non_adjacent_form(constant):
            self.code.emit(Op.LOCAL_GET, scratch)
            if shift:
                self.code.emit(Op.CONST, shift)
                self.code.emit(Op.SHL)
            self.code.emit(Op.ADD if digit > 0 else Op.SUB)
        return True

    def _memory_size(self, instruction: Instruction) -> None:
        self.code.emit(Op.MEMORY_SIZE, self.env.memory_pages)
        self.height += 1

    def _memory_grow(self, instruction: Instruction) -> None:
        self.code.emit(Op.MEMORY_GROW, self.env.memory_pages)

    def _bulk_memory(self, instruction: Instruction) -> None:
        """memory.fill (d value n) / memory.copy (d s n): push the window, call the helper of that name.

        The helpers (helpers.wat) check d + n (and s + n) against the window
        before writing anything and copy like memmove.
        """
        self.code.emit(Op.CONST, self.env.memory_limit)
        self.code.emit(Op.CALL, self.env.helper_symbol(BULK_MEMORY_HELPERS[instruction.name]))
        self.height -= BULK_MEMORY_OPERANDS

    def _call(self, instruction: Instruction) -> None:
        callee = instruction.args[0]
        signature = self.module.function_type(callee)
        target = self.env.function_symbol(callee)
        if isinstance(target, Instr):
            self.code.emit(target.op, target.arg)
        else:
            self.result.calls.add(callee)
            self.code.emit(Op.CALL, target)
        self.height += len(signature.results) - len(signature.params)

    def _call_indirect(self, instruction: Instruction) -> None:
        type_index, table = instruction.args
        signature = self.module.types[type_index]
        for kind in signature.params + signature.results:
            if kind != "i32":
                raise self.fail(f"call_indirect of type {signature} is not supported ({type_reason(kind)})")
        self.result.indirect_types.add((type_index, table))
        self.code.emit(Op.CALL, self.env.dispatch_symbol(type_index, table))
        self.height += len(signature.results) - len(signature.params) - 1

    # --- structured control --------------------------------------------------------------

    def _open(self, kind: str, block_type, target: Label | None = None) -> _Frame:
        params, results = self._block_type(block_type)
        end = Label()
        dead = self.frames[-1].unreachable
        frame = _Frame(kind, self.height - params, params, results, target or end, end, dead=dead, unreachable=dead)
        self.frames.append(frame)
        return frame

    def _block(self, instruction: Instruction) -> None:
        self._open("block", instruction.args[0])

    def _loop(self, instruction: Instruction) -> None:
        start = Label()
        frame = self._open("loop", instruction.args[0], start)
        if not frame.dead:
            self.code.place(start)

    def _if(self, instruction: Instruction) -> None:
        if not self.frames[-1].unreachable:
            self.height -= 1  # the condition
        frame = self._open("if", instruction.args[0])
        frame.else_label = Label()
        if not frame.dead:
            self.code.emit(Op.JUMP_IF_ZERO, frame.else_label)

    def _else(self, instruction: Instruction) -> None:
        frame = self.frames[-1]
        if frame.dead:
            return
        if not frame.unreachable:
            self.code.emit(Op.JUMP, frame.end)
        self.code.place(frame.else_label)
        frame.else_label = None
        frame.unreachable = False
        self.height = frame.base + frame.params

    def _end(self, instruction: Instruction) -> None:
        frame = self.frames.pop()
        if frame.dead:
            return
        if frame.else_label is not None:
            self.code.place(frame.else_label)  # an if without else: false falls through
        self.code.place(frame.end)
        self.height = frame.base + frame.results
        if frame.kind == "function":
            self.code.emit(Op.RETURN)

    # --- branches ----------------------------------------------------------------------

    def _br(self, instruction: Instruction) -> None:
        self._branch_to(self.frames[-1 - instruction.args[0]])
        self.frames[-1].unreachable = True

    def _return(self, instruction: Instruction) -> None:
        self._branch_to(self.frames[0])
        self.frames[-1].unreachable = True

    def _br_if(self, instruction: Instruction) -> None:
        self.height -= 1
        frame = self.frames[-1 - instruction.args[0]]
        if self._is_plain_jump(frame):
            self.code.emit(Op.JUMP_IF_NONZERO, frame.target)
            return
        skip = Label()
        self.code.emit(Op.JUMP_IF_ZERO, skip)
        self._branch_to(frame)
        self.code.place(skip)

    def _br_table(self, instruction: Instruction) -> None:
        depths, default = instruction.args
        self.height -= 1
        index_local = self._scratch(0)
        self.code.emit(Op.LOCAL_SET, index_local)
        targets: dict[int, Label] = {}
        stubs: dict[int, Label] = {}  # targets that first need values discarded
        for depth in sorted(set(depths) | {default}):
            frame = self.frames[-1 - depth]
            if self._is_plain_jump(frame):
                targets[depth] = frame.target
            else:
                targets[depth] = stubs[depth] = Label()
        emit_index_search(self.code, index_local, index_runs(list(depths), default), targets)
        for depth, stub in stubs.items():
            self.code.place(stub)
            self._branch_to(self.frames[-1 - depth])
        self.frames[-1].unreachable = True

    def _is_plain_jump(self, frame: _Frame) -> bool:
        return frame.kind != "function" and self.height - frame.arity == frame.base

    def _branch_to(self, frame: _Frame) -> None:
        """Discard the values between the kept results and the frame's base, then go."""
        keep = frame.arity
        discard = self.height - keep - frame.base
        if discard:
            slots = [self._scratch(slot) for slot in range(keep)]
            for slot in reversed(slots):
                self.code.emit(Op.LOCAL_SET, slot)
            for _ in range(discard):
                self.code.emit(Op.DROP)
            for slot in slots:
                self.code.emit(Op.LOCAL_GET, slot)
        if frame.kind == "function":
            self.code.emit(Op.RETURN)
        else:
            self.code.emit(Op.JUMP, frame.target)
