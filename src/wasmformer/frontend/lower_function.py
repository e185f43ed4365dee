"""One wasm function body -> relocatable VM code with absolute-jump control flow.

The operand stack of the VM is the wasm operand stack, each value as one or
two 32-bit words (an i64 or f64 is two, low word deeper: frontend/words.py);
only locals are per frame, one VM local per word. Lowering tracks the stack's
values and their words statically (the module is validated, so every shape is
known) and turns each structured construct into jumps:

    block ... end          the label is the position after ``end``
    loop ... end           the label is the loop's first instruction
    if ... else ... end    JUMP_IF_ZERO to the else part, JUMP over it at ``else``
    br / br_if / br_table  a jump to the label, after discarding the values that
                           lie between the branch's results and the label's base
                           height (results saved in scratch locals, DROPs, restored)
    return                 the same discarding down to height 0, then RETURN

A function starts with a prologue that pops its parameters' words into its
first locals (LOCAL_SET in reverse order) and ends with RETURN. Scratch locals live after
the declared locals. Code after an unconditional branch is not emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from wasmformer.frontend.assemble import Code, Label, Symbol, emit_index_search, index_runs
from wasmformer.frontend.decode import FuncType, Instruction, Module, decode_body
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.words import (FLOAT_MEMORY, I64_SIGN_EXTENSIONS, NARROW_I64_STORES, REINTERPRETATIONS,
                                       const_words, float_instruction_type, is_float_arithmetic, words_of)
from wasmformer.vm.ops import OP_TABLE, Immediate, OpSpec, Record, spec
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
# Each pops 3 operands; the lowering pushes the memory's current size in bytes as a 4th argument. memory.init calls its
# segment's own subroutine the same way (frontend/segments.py); data.drop zeroes the segment's length.
BULK_MEMORY_HELPERS = {"memory.fill": "memory_fill", "memory.copy": "memory_copy"}
BULK_MEMORY_OPERANDS = 3
PAGE_BITS = 16  # a wasm page is 2^16 bytes

# i64 shifts by a constant, lowered to i32 shifts of the words (_shift_by_constant): op -> the i32 shift of the
# high word's bits that move down (shr) or of each word (shl)
CONSTANT_SHIFTS_64 = {Op.SHL64: Op.SHL, Op.SHR_U64: Op.SHR_U, Op.SHR_S64: Op.SHR_S}

UNSUPPORTED_BY_PREFIX = [  # (name prefix, why), first match wins
    ("table.", "no reference types"), ("elem.drop", "no reference types"),
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
    memory_limit: int  # the most bytes the memory can grow to: accesses at or beyond this address always trap
    memory_pages: int  # the initial memory size in pages: the immediate of memory.size and memory.grow
    function_symbol: Callable[[int], Symbol | Instr]  # an Instr for imports (PUTCHAR, GETCHAR, TRAP)
    global_slot: Callable[[int, Callable], int]  # wasm global -> VM global; refuses via the 2nd argument
    op_target: Callable[[Op], Symbol | None]  # None: native; else the helper that replaces the op
    dispatch_symbol: Callable[[int, int], Symbol]  # (type index, table index) -> call_indirect dispatcher
    helper_symbol: Callable[[str], Symbol]  # a helper subroutine by its export name (its use is recorded)
    name_prefix: str = ""  # for function names in messages and origins
    native_ops: frozenset = frozenset()  # the ops the machine executes itself (a pure query; op_target counts)
    # data segment -> (the subroutine memory.init calls, the VM global holding its remaining length)
    data_segment: Callable[[int], tuple[Symbol, int]] | None = None


@dataclass
class _Frame:
    kind: str  # "function", "block", "loop" or "if"
    base: int  # the number of values on the stack below the frame's parameters
    params: list[int]  # words of each parameter
    results: list[int]  # words of each result
    target: Label  # where a branch to this frame goes
    end: Label
    else_label: Label | None = None
    dead: bool = False  # the whole frame is unreachable code
    unreachable: bool = False  # the rest of the frame is unreachable

    @property
    def arity(self) -> list[int]:
        """Words of each value a branch to this frame carries."""
        return self.params if self.kind == "loop" else self.results


@dataclass
class LoweredFunction:
    code: Code
    calls: set[int] = field(default_factory=set)  # function indices called directly
    indirect_types: set[tuple[int, int]] = field(default_factory=set)  # call_indirect (type index, table)
    frame_size: int = 0  # words of params + declared locals + scratch locals
    segment_inits: set[int] = field(default_factory=set)  # data segments its memory.init instructions copy
    # wasm instruction index -> name, for the float instructions lowered to TRAP UNSUPPORTED
    unsupported: dict[int, str] = field(default_factory=dict)


def signature_words(module: Module, where: str, signature: FuncType) -> tuple[list[int], list[int]]:
    """Words of each param and each result; refuses types the machine has no words for."""
    for kind in signature.params + signature.results:
        if words_of(kind) is None:
            raise FrontendError(f"{where}: type {signature} is not supported ({type_reason(kind)})")
    return [words_of(kind) for kind in signature.params], [words_of(kind) for kind in signature.results]


def type_reason(kind: str) -> str:
    if kind.startswith("(ref"):
        return "no typed references (function-references / GC proposals)"
    return {"v128": "no SIMD"}.get(kind, "no reference types")


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
        self.values: list[int] = []  # the words of each value on the operand stack, deepest first
        self.position = 0
        self.param_words, self.result_words = signature_words(self.module, self.where, self.signature)
        self.local_words = self.param_words + self._declared_locals()  # words of each wasm local
        self.local_base = [sum(self.local_words[:i]) for i in range(len(self.local_words))]  # its first VM local
        self.locals_count = sum(self.local_words)
        self.scratch_used = 0
        self.handlers = {
            "nop": self._nop, "unreachable": self._unreachable, "i32.const": self._i32_const,
            "i64.const": self._const, "f32.const": self._const, "f64.const": self._const,
            "memory.size": self._memory_size, "memory.grow": self._memory_grow,
            "call": self._call, "call_indirect": self._call_indirect, "drop": self._drop, "select": self._select,
            "block": self._block, "loop": self._loop, "if": self._if, "else": self._else, "end": self._end,
            "br": self._br, "br_if": self._br_if, "br_table": self._br_table, "return": self._return,
            "memory.fill": self._bulk_memory, "memory.copy": self._bulk_memory, "memory.init": self._memory_init,
            "data.drop": self._data_drop,
            "i64.eqz": self._i64_eqz, "i32.wrap_i64": self._wrap, "i64.extend_i32_u": self._extend_unsigned,
            **{name: self._reinterpret for name in REINTERPRETATIONS},
            **{name: self._i64_sign_extension for name in I64_SIGN_EXTENSIONS},
            **{name: self._float_memory for name in FLOAT_MEMORY},
            **{name: self._narrow_i64_store for name in NARROW_I64_STORES},
        }

    def _declared_locals(self) -> list[int]:
        words = []
        for count, kind in self.function.local_types:
            if count and words_of(kind) is None:
                raise FrontendError(f"{self.where}: locals of type {kind} are not supported ({type_reason(kind)})")
            words += [words_of(kind)] * count
        return words

    @property
    def height(self) -> int:
        """Words on the operand stack."""
        return sum(self.values)

    def _pop(self, count: int = 1) -> list[int]:
        """Take ``count`` values off the static stack; their words, deepest first."""
        if count > len(self.values) - (self.frames[-1].base if self.frames else 0):
            raise RuntimeError(f"{self.where}, instruction {self.position}: the lowering's stack model has "
                               f"{len(self.values)} values, {count} popped (a front-end bug)")
        taken = self.values[len(self.values) - count:]
        del self.values[len(self.values) - count:]
        return taken

    def run(self) -> LoweredFunction:
        for local in reversed(range(sum(self.param_words))):
            self.code.emit(Op.LOCAL_SET, local)
        end = Label()
        self.frames.append(_Frame("function", 0, [], self.result_words, end, end))
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

    def _block_type(self, block_type) -> tuple[list[int], list[int]]:
        """Words of the block's params and results."""
        if block_type is None:
            return [], []
        if isinstance(block_type, str):
            if words_of(block_type) is None:
                raise self.fail(f"a block of type {block_type} is not supported ({type_reason(block_type)})")
            return [], [words_of(block_type)]
        return signature_words(self.module, f"{self.where}, instruction {self.position}",
                               self.module.types[block_type])

    # --- dispatch on the instruction ----------------------------------------------

    def _instruction(self, instruction: Instruction) -> None:
        name = instruction.name
        frame = self.frames[-1]
        if frame.unreachable and name not in ("block", "loop", "if", "else", "end"):
            return
        handler = self.handlers.get(name)
        if handler is not None:
            handler(instruction)
        elif name in SIMPLE_OPS:
            self._simple(SIMPLE_OPS[name])
        elif name in MEMORY_OPS:
            self._memory(instruction, MEMORY_OPS[name])
        elif name in VARIABLE_OPS:
            self._variable(instruction, VARIABLE_OPS[name])
        elif is_float_arithmetic(name):
            self._float_helper(name)
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
            self._pop()
            return
        if row.op in CONSTANT_SHIFTS_64 and self._shift_by_constant(row.op):
            self._pop()
            return
        self._emit_op(row.op)
        self._pop(row.pops // row.operand_words)
        if row.pushes:
            self.values.append(row.pushes)  # one value of that many words

    def _emit_op(self, op: Op) -> None:
        """An op the machine executes, or a call of its helper where it does not."""
        helper = self.env.op_target(op)
        self.code.emit(Op.CALL, helper) if helper is not None else self.code.emit(op)

    def _memory(self, instruction: Instruction, row: OpSpec) -> None:
        offset = instruction.args[1]
        if not self._always_out_of_bounds(offset, row.width, row.pops):  # pops: words (an address and a value)
            self.code.emit(row.op, offset)
        self._pop(1 + (row.record is Record.MEMORY))  # values: the address, and a store's value
        if row.pushes:
            self.values.append(row.pushes)  # one value of that many words (an i64 load: two)

    def _always_out_of_bounds(self, offset: int, width: int, operand_words: int) -> bool:
        """When every address plus this offset is past the largest memory, the access always traps: emit that."""
        if offset + width <= self.env.memory_limit:
            return False
        for _ in range(operand_words):
            self.code.emit(Op.DROP)
        self.code.emit(Op.TRAP, TrapReason.OUT_OF_BOUNDS_MEMORY)
        return True

    def _variable(self, instruction: Instruction, row: OpSpec) -> None:
        """local/global get, set, tee: one VM op per word (the high word is on top of the stack)."""
        index = instruction.args[0]
        if row.immediate is Immediate.GLOBAL:
            first, words = self.env.global_slot(index, self.fail)
        else:
            first, words = self.local_base[index], self.local_words[index]
        slots = [first + word for word in range(words)]
        if row.op in (Op.LOCAL_GET, Op.GLOBAL_GET):
            for slot in slots:
                self.code.emit(row.op, slot)
            self.values.append(words)
            return
        for slot in reversed(slots[1:]):
            self.code.emit(Op.LOCAL_SET if row.op is Op.LOCAL_TEE else row.op, slot)
        self.code.emit(row.op, slots[0])
        if row.op is Op.LOCAL_TEE:
            for slot in slots[1:]:
                self.code.emit(Op.LOCAL_GET, slot)
        else:
            self._pop()

    # --- plain instructions ----------------------------------------------------------

    def _nop(self, instruction: Instruction) -> None:
        pass

    def _unreachable(self, instruction: Instruction) -> None:
        self.code.emit(Op.TRAP, TrapReason.UNREACHABLE)
        self.frames[-1].unreachable = True

    def _i32_const(self, instruction: Instruction) -> None:
        self.code.emit(Op.CONST, to_i32(instruction.args[0]))
        self.values.append(1)
        self.last_const = (self.position, len(self.code))

    def _const(self, instruction: Instruction) -> None:
        """i64, f32 and f64 consts: one CONST per word, low first (floats as their raw bits)."""
        words = const_words(instruction.name.split(".")[0], instruction.args[0])
        for word in words:
            self.code.emit(Op.CONST, to_i32(word))
        self.values.append(len(words))
        if instruction.name == "i64.const":
            self.last_i64_const = (self.position, len(self.code), words[0])

    def _drop(self, instruction: Instruction) -> None:
        for _ in range(self._pop()[0]):
            self.code.emit(Op.DROP)

    def _select(self, instruction: Instruction) -> None:
        """select: the VM's SELECT per word, the condition and the second operand kept in scratch locals."""
        self._pop()  # the condition
        _, words = self._pop(2)  # both operands have the same type
        if words == 1:
            self.code.emit(Op.SELECT)
            self.values.append(1)
            return
        condition, second = self._scratch(0), [self._scratch(1 + word) for word in range(words)]
        first_high = [self._scratch(1 + words + word) for word in range(words - 1)]
        self.code.emit(Op.LOCAL_SET, condition)
        for slot in reversed(second):
            self.code.emit(Op.LOCAL_SET, slot)
        for slot in reversed(first_high):  # the first operand's high words; its low word stays on the stack
            self.code.emit(Op.LOCAL_SET, slot)
        for word in range(words):
            if word:
                self.code.emit(Op.LOCAL_GET, first_high[word - 1])
            self.code.emit(Op.LOCAL_GET, second[word])
            self.code.emit(Op.LOCAL_GET, condition)
            self.code.emit(Op.SELECT)
        self.values.append(words)

    # --- i64 and float bits as words (frontend/words.py) -----------------------------

    def _float_memory(self, instruction: Instruction) -> None:
        self._memory(instruction, MEMORY_OPS[FLOAT_MEMORY[instruction.name]])

    def _narrow_i64_store(self, instruction: Instruction) -> None:
        """i64.store8/16/32: drop the high word, store the low word's low bytes."""
        op = NARROW_I64_STORES[instruction.name]
        offset = instruction.args[1]
        self._pop(2)
        if not self._always_out_of_bounds(offset, spec(op).width, 3):
            self.code.emit(Op.DROP)
            self.code.emit(op, offset)

    def _i64_eqz(self, instruction: Instruction) -> None:
        self._emit_op(Op.OR)
        self._emit_op(Op.EQZ)
        self._pop()
        self.values.append(1)

    def _wrap(self, instruction: Instruction) -> None:
        self.code.emit(Op.DROP)
        self._pop()
        self.values.append(1)

    def _extend_unsigned(self, instruction: Instruction) -> None:
        self.code.emit(Op.CONST, 0)
        self._pop()
        self.values.append(2)

    def _i64_sign_extension(self, instruction: Instruction) -> None:
        """i64.extendN_s: drop the high word, sign-extend the low word's N bits, fill the high word."""
        self.code.emit(Op.DROP)
        narrow = I64_SIGN_EXTENSIONS[instruction.name]
        if narrow is not None:
            self._emit_op(narrow)
        self.code.emit(Op.EXTEND_I32_S)

    def _reinterpret(self, instruction: Instruction) -> None:
        pass  # the same words, read as another type

    def _float_helper(self, name: str) -> None:
        """Float arithmetic, comparisons and numeric conversions: a call of the helper of that name (the float
        library, frontend/softfloat.py), whose words replace the operands' on the stack."""
        signature = float_instruction_type(name)
        self.code.emit(Op.CALL, self.env.helper_symbol(name))
        self._pop(len(signature.params))
        self.values += [words_of(kind) for kind in signature.results]

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

    def _shift_by_constant(self, op: Op) -> bool:
        """An i64 shift right after i64.const C, as i32 shifts of the two words when the machine shifts i32
        natively: 5 to 12 steps instead of a helper call (~25). Soft float (frontend/softfloat.c) shifts its
        significands by constants all the time. Nothing may lie between the const and the shift (no label),
        so the const's two words are taken back out of the code."""
        position, length, low = getattr(self, "last_i64_const", (-1, -1, 0))
        if position != self.position - 1 or length != len(self.code) or self.code.labels_at(length):
            return False
        if not {Op.SHL, Op.SHR_U, Op.SHR_S, Op.OR} <= self.env.native_ops:
            return False
        for _ in range(2):
            self.code.items.pop()
            self.code.origins.pop()
        count = low % 64
        if count == 0:
            return True
        low_word, high_word = self._scratch(0), self._scratch(1)  # free between wasm instructions
        emit = self.code.emit
        emit(Op.LOCAL_SET, high_word)
        emit(Op.LOCAL_SET, low_word)
        if count >= 32:  # one word moves whole into the other, shifted by the rest
            rest = count - 32
            source = low_word if op is Op.SHL64 else high_word
            if op is Op.SHL64:
                emit(Op.CONST, 0)
            emit(Op.LOCAL_GET, source)
            if rest:
                emit(Op.CONST, rest)
                emit(Op.SHL if op is Op.SHL64 else CONSTANT_SHIFTS_64[op])
            if op is Op.SHR_U64:
                emit(Op.CONST, 0)
            elif op is Op.SHR_S64:
                emit(Op.LOCAL_GET, high_word)
                emit(Op.CONST, 31)
                emit(Op.SHR_S)
            return True
        if op is Op.SHL64:  # low << c, then high << c | low >> (32 - c)
            parts = [(low_word, Op.SHL, count, None), (high_word, Op.SHL, count, (low_word, Op.SHR_U, 32 - count))]
        else:  # low >> c | high << (32 - c), then high >> c (sign-filling for shr_s)
            parts = [(low_word, Op.SHR_U, count, (high_word, Op.SHL, 32 - count)),
                     (high_word, CONSTANT_SHIFTS_64[op], count, None)]
        for word, shift, amount, carried in parts:
            emit(Op.LOCAL_GET, word)
            emit(Op.CONST, amount)
            emit(shift)
            if carried is not None:
                emit(Op.LOCAL_GET, carried[0])
                emit(Op.CONST, carried[2])
                emit(carried[1])
                emit(Op.OR)
        return True

    def _memory_size(self, instruction: Instruction) -> None:
        self.code.emit(Op.MEMORY_SIZE, self.env.memory_pages)
        self.values.append(1)

    def _memory_grow(self, instruction: Instruction) -> None:
        self.code.emit(Op.MEMORY_GROW, self.env.memory_pages)

    def _push_memory_bytes(self) -> None:
        """The memory's current size in bytes: memory.size (pages) times 2^16."""
        self.code.emit(Op.MEMORY_SIZE, self.env.memory_pages)
        self.code.emit(Op.CONST, PAGE_BITS)
        self.code.emit(Op.SHL)

    def _bulk_memory(self, instruction: Instruction) -> None:
        """memory.fill (d value n) / memory.copy (d s n): push the memory's size, call the helper of that name.

        The helpers (helpers.wat) check d + n (and s + n) against that size
        before writing anything and copy like memmove.
        """
        self._push_memory_bytes()
        self.code.emit(Op.CALL, self.env.helper_symbol(BULK_MEMORY_HELPERS[instruction.name]))
        self._pop(BULK_MEMORY_OPERANDS)

    def _memory_init(self, instruction: Instruction) -> None:
        """memory.init k (d s n): push the memory's size, call segment k's subroutine (frontend/segments.py)."""
        init, _ = self._data_segment(instruction.args[0])
        self.result.segment_inits.add(instruction.args[0])
        self._push_memory_bytes()
        self.code.emit(Op.CALL, init)
        self._pop(BULK_MEMORY_OPERANDS)

    def _data_drop(self, instruction: Instruction) -> None:
        _, length_global = self._data_segment(instruction.args[0])
        self.code.emit(Op.CONST, 0)
        self.code.emit(Op.GLOBAL_SET, length_global)

    def _data_segment(self, index: int) -> tuple[Symbol, int]:
        if self.env.data_segment is None:
            raise self.fail("memory.init and data.drop are not supported here")
        return self.env.data_segment(index)

    def _call(self, instruction: Instruction) -> None:
        callee = instruction.args[0]
        params, results = signature_words(self.module, f"{self.where}, instruction {self.position}",
                                          self.module.function_type(callee))
        target = self.env.function_symbol(callee)
        if isinstance(target, Instr):
            self.code.emit(target.op, target.arg)
        else:
            self.result.calls.add(callee)
            self.code.emit(Op.CALL, target)
        self._pop(len(params))
        self.values += results

    def _call_indirect(self, instruction: Instruction) -> None:
        type_index, table = instruction.args
        params, results = signature_words(self.module, f"{self.where}, instruction {self.position}",
                                          self.module.types[type_index])
        self.result.indirect_types.add((type_index, table))
        self.code.emit(Op.CALL, self.env.dispatch_symbol(type_index, table))
        self._pop(len(params) + 1)
        self.values += results

    # --- structured control --------------------------------------------------------------

    def _open(self, kind: str, block_type, target: Label | None = None) -> _Frame:
        params, results = self._block_type(block_type)
        end = Label()
        dead = self.frames[-1].unreachable
        frame = _Frame(kind, len(self.values) - len(params), params, results, target or end, end, dead=dead,
                       unreachable=dead)
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
            self._pop()  # the condition
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
        self.values[frame.base:] = frame.params

    def _end(self, instruction: Instruction) -> None:
        frame = self.frames.pop()
        if frame.dead:
            return
        if frame.else_label is not None:
            self.code.place(frame.else_label)  # an if without else: false falls through
        self.code.place(frame.end)
        self.values[frame.base:] = frame.results
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
        self._pop()
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
        self._pop()
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
        return frame.kind != "function" and self.height - sum(frame.arity) == sum(self.values[:frame.base])

    def _branch_to(self, frame: _Frame) -> None:
        """Discard the words between the kept results and the frame's base, then go."""
        keep = sum(frame.arity)
        discard = self.height - keep - sum(self.values[:frame.base])
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
