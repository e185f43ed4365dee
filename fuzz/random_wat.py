"""Random valid WAT modules for differential runs (ours against wasmtime).

A module imports ``putchar`` (and sometimes ``getchar``) from module
``wasmformer`` (docs/vm-program.md, "I/O and the entry"), has one memory page,
a few mutable globals, a data segment, up to MAX_FUNCTIONS - 1 helpers and the
entry `main`. Function k calls only functions below k, so there is no
recursion, and loops run a fixed number of times and contain no calls, so every
program halts within a small trace. Division by zero, signed overflow,
out-of-bounds accesses and ``unreachable`` appear now and then, so traps are
exercised too.

Memory: one page that may grow to MAX_PAGES; in-bounds accesses go anywhere in
the first page (its four 16 KiB banks of the machine's memory), out-of-bounds
ones past it, which after a ``memory.grow`` may be in bounds (wasmtime decides).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PAGE_BYTES = 65536
MAX_PAGES = 3  # the memory's declared maximum: a grow past it returns -1
MAX_FUNCTIONS = 4
MAX_PARAMS = 3
MAX_VALUE_LOCALS = 3
MAX_LOOP_TURNS = 5
MAX_LOOP_NESTING = 2
MAX_EXPRESSION_DEPTH = 3
MAX_STATEMENT_DEPTH = 3
STATEMENTS_PER_BLOCK = (1, 4)
DATA_ADDRESS = 512  # where the data segment goes
ADDRESS_MASK = 0xFCFF  # masks a computed address into the first page, leaving room for offsets and widths
MAX_STATIC_OFFSET = 255
GROW_CHANCE = 0.1  # of a drop statement becoming a printed memory.grow
# Constants that find edge cases in i32 arithmetic.
EDGE_VALUES = (0, 1, -1, 2, 31, 32, 255, 256, 65535, 65536, 2**31 - 1, -(2**31))
# Past the page for a one-byte access; a four-byte load also traps when it starts in the last 3 bytes.
OUT_OF_BOUNDS_ADDRESSES = (PAGE_BYTES, -1, 2**31 - 1, 100_000)
STRADDLING_ADDRESSES = (PAGE_BYTES - 1, PAGE_BYTES - 3)
NONZERO_DIVISOR_CHANCE = 0.93  # else the divisor may be zero: a trap
TRAP_STATEMENT_CHANCE = 0.02  # a statement that traps on a condition true about a quarter of the time

BINARY_OPS = ("add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl", "shr_s",
              "shr_u", "rotl", "rotr", "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")
DIVISION_OPS = ("div_s", "div_u", "rem_s", "rem_u")
UNARY_OPS = ("clz", "ctz", "popcnt", "eqz", "extend8_s", "extend16_s")
LOADS = (("i32.load", 4), ("i32.load8_s", 1), ("i32.load8_u", 1), ("i32.load16_s", 2), ("i32.load16_u", 2))
STORES = (("i32.store", 4), ("i32.store8", 1), ("i32.store16", 2))
# i64: computed from i32 expressions and constants, read back as an i32 (wrapped, compared or a high word).
WIDE_BINARY_OPS = BINARY_OPS[:15]  # add .. rotr
WIDE_COMPARISONS = BINARY_OPS[15:]  # eq .. ge_u
WIDE_EDGE_VALUES = (0, 1, -1, 2**32, 2**32 - 1, 2**31, 2**63 - 1, -(2**63), 0x123456789ABCDEF0, 63, 64)
WIDE_LOADS = (("i64.load", 8), ("i64.load8_s", 1), ("i64.load16_u", 2), ("i64.load32_s", 4), ("i64.load32_u", 4))
WIDE_STORES = (("i64.store", 8), ("i64.store8", 1), ("i64.store16", 2), ("i64.store32", 4))


@dataclass(frozen=True)
class Function:
    name: str
    params: int
    has_result: bool
    locals: int  # declared locals after the parameters (value locals and loop counters)
    body: tuple[str, ...]

    def text(self) -> str:
        signature = " (param" + " i32" * self.params + ")" if self.params else ""
        signature += " (result i32)" if self.has_result else ""
        local_decl = "\n    (local" + " i32" * self.locals + ")" if self.locals else ""
        body = "".join(f"\n    {line}" for line in self.body)
        return f"  (func ${self.name}{signature}{local_decl}{body})"


@dataclass(frozen=True)
class RandomModule:
    functions: tuple[Function, ...]
    globals: tuple[int, ...]
    data: bytes
    uses_getchar: bool

    @property
    def entry(self) -> Function:
        return self.functions[-1]

    def text(self, exports: dict[str, str], extra_functions: tuple[str, ...] = ()) -> str:
        """The module as WAT, exporting ``{export name: function name}`` plus any extra function texts."""
        lines = ["(module", '  (import "wasmformer" "putchar" (func $putchar (param i32)))']
        if self.uses_getchar:
            lines.append('  (import "wasmformer" "getchar" (func $getchar (result i32)))')
        lines.append(f"  (memory 1 {MAX_PAGES})")
        lines += [f"  (global $g{index} (mut i32) (i32.const {value}))" for index, value in enumerate(self.globals)]
        data = "".join(f"\\{byte:02x}" for byte in self.data)
        lines.append(f'  (data (i32.const {DATA_ADDRESS}) "{data}")')
        lines += [function.text() for function in self.functions]
        lines += list(extra_functions)
        lines += [f'  (export "{export}" (func ${name}))' for export, name in exports.items()]
        return "\n".join(lines) + ")\n"


@dataclass
class _Scope:
    """What the code being generated may use: its locals, callees, loop counters in use."""

    value_locals: list[int]  # locals the code may assign (parameters included)
    free_counters: list[int]  # loop counters not taken by an enclosing loop
    all_locals: list[int]  # locals the code may read
    callees: list[Function]
    loop_depth: int = 0
    labels: list[str] = field(default_factory=list)


class ModuleGenerator:
    """Builds one RandomModule from a seeded random.Random (labels numbered per module)."""

    def __init__(self, rng: random.Random, uses_getchar: bool):
        self.rng = rng
        self.uses_getchar = uses_getchar
        self.label_count = 0
        self.globals = tuple(self.constant() for _ in range(rng.randint(0, 2)))

    def module(self) -> RandomModule:
        """Helpers f0.. (random parameters and results), then the entry `main`: no parameters."""
        rng = self.rng
        functions: list[Function] = []
        for index in range(rng.randint(0, MAX_FUNCTIONS - 1)):
            functions.append(self.function(f"f{index}", rng.randint(0, MAX_PARAMS), rng.random() < 0.8, functions))
        functions.append(self.function("main", 0, rng.random() < 0.5, functions))
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 16)))
        return RandomModule(tuple(functions), self.globals, data, self.uses_getchar)

    def function(self, name: str, params: int, has_result: bool, callees: list[Function]) -> Function:
        values = self.rng.randint(0, MAX_VALUE_LOCALS)
        first_counter = params + values
        scope = _Scope(value_locals=list(range(first_counter)),
                       free_counters=list(range(first_counter, first_counter + MAX_LOOP_NESTING)),
                       all_locals=list(range(first_counter + MAX_LOOP_NESTING)), callees=list(callees))
        body = self.statements(scope, MAX_STATEMENT_DEPTH)
        if has_result:
            body.append(self.expression(scope, MAX_EXPRESSION_DEPTH))
        return Function(name, params, has_result, values + MAX_LOOP_NESTING, tuple(body))

    # -- statements --------------------------------------------------------------------------------

    def statements(self, scope: _Scope, depth: int) -> list[str]:
        return [self.statement(scope, depth) for _ in range(self.rng.randint(*STATEMENTS_PER_BLOCK))]

    def statement(self, scope: _Scope, depth: int) -> str:
        kinds = [self.set_local, self.print_byte, self.print_digit, self.store, self.drop, self.wide_store]
        if self.globals:
            kinds.append(self.set_global)
        if depth > 0:
            kinds += [self.if_else, self.block_exit, self.branch_table]
            if scope.free_counters:
                kinds += [self.loop, self.loop]
        if self.rng.random() < TRAP_STATEMENT_CHANCE:
            kinds = [self.trap_sometimes]
        return kinds[self.rng.randrange(len(kinds))](scope, depth)

    def set_local(self, scope: _Scope, depth: int) -> str:
        if not scope.value_locals:
            return self.print_digit(scope, depth)
        return f"(local.set {self.rng.choice(scope.value_locals)} {self.expression(scope, MAX_EXPRESSION_DEPTH)})"

    def set_global(self, scope: _Scope, depth: int) -> str:
        index = self.rng.randrange(len(self.globals))
        return f"(global.set $g{index} {self.expression(scope, MAX_EXPRESSION_DEPTH)})"

    def print_byte(self, scope: _Scope, depth: int) -> str:
        return f"(call $putchar {self.expression(scope, MAX_EXPRESSION_DEPTH)})"

    def print_digit(self, scope: _Scope, depth: int) -> str:
        value = self.expression(scope, MAX_EXPRESSION_DEPTH)
        return f"(call $putchar (i32.add (i32.const 48) (i32.rem_u {value} (i32.const 10))))"

    def store(self, scope: _Scope, depth: int) -> str:
        op, width = self.rng.choice(STORES)
        offset, address = self.address(scope, width)
        return f"({op} offset={offset} {address} {self.expression(scope, MAX_EXPRESSION_DEPTH)})"

    def wide_store(self, scope: _Scope, depth: int) -> str:
        op, width = self.rng.choice(WIDE_STORES)
        offset, address = self.address(scope, width)
        return f"({op} offset={offset} {address} {self.wide_value(scope, 2)})"

    def drop(self, scope: _Scope, depth: int) -> str:
        if self.rng.random() < GROW_CHANCE:  # memory.grow by 0 or 1 pages: the old size, or -1 at the maximum
            return f"(call $putchar (i32.add (i32.const 48) (memory.grow (i32.const {self.rng.randint(0, 1)}))))"
        return f"(drop {self.expression(scope, MAX_EXPRESSION_DEPTH)})"

    def if_else(self, scope: _Scope, depth: int) -> str:
        condition = self.expression(scope, 2)
        then = " ".join(self.statements(scope, depth - 1))
        if self.rng.random() < 0.5:
            return f"(if {condition} (then {then}))"
        return f"(if {condition} (then {then}) (else {' '.join(self.statements(scope, depth - 1))}))"

    def block_exit(self, scope: _Scope, depth: int) -> str:
        """A block left early by br_if when a condition holds."""
        label = self.new_label("b")
        first = " ".join(self.statements(scope, depth - 1))
        rest = " ".join(self.statements(scope, depth - 1))
        return f"(block ${label} {first} (br_if ${label} {self.expression(scope, 2)}) {rest})"

    def branch_table(self, scope: _Scope, depth: int) -> str:
        """br_table over three nested blocks: index 0 runs both tails, 1 the outer one, others neither."""
        outer, middle, inner = (self.new_label("t") for _ in range(3))
        index = self.expression(scope, 2)
        middle_tail = " ".join(self.statements(scope, depth - 1))
        outer_tail = " ".join(self.statements(scope, depth - 1))
        return (f"(block ${outer} (block ${middle} (block ${inner} (br_table ${inner} ${middle} ${outer} {index})) "
                f"{middle_tail}) {outer_tail})")

    def loop(self, scope: _Scope, depth: int) -> str:
        """A counted loop: its counter local is reserved while the body runs, and the body makes no calls."""
        counter = scope.free_counters.pop()
        exit_label, loop_label = self.new_label("x"), self.new_label("l")
        turns = self.rng.randint(1, MAX_LOOP_TURNS)
        scope.loop_depth += 1
        body = " ".join(self.statements(scope, depth - 1))
        scope.loop_depth -= 1
        scope.free_counters.append(counter)
        return (f"(local.set {counter} (i32.const 0)) (block ${exit_label} (loop ${loop_label} "
                f"(br_if ${exit_label} (i32.ge_u (local.get {counter}) (i32.const {turns}))) {body} "
                f"(local.set {counter} (i32.add (local.get {counter}) (i32.const 1))) (br ${loop_label})))")

    def trap_sometimes(self, scope: _Scope, depth: int) -> str:
        """A rare trap on a data-dependent condition: unreachable or an out-of-bounds access."""
        condition = f"(i32.eqz (i32.and {self.expression(scope, 1)} (i32.const 3)))"
        address = self.rng.choice(OUT_OF_BOUNDS_ADDRESSES)
        straddling = self.rng.choice(STRADDLING_ADDRESSES + OUT_OF_BOUNDS_ADDRESSES)
        trap = self.rng.choice(["unreachable", f"(drop (i32.load (i32.const {straddling})))",
                                f"(i32.store8 (i32.const {address}) (i32.const 1))"])
        return f"(if {condition} (then {trap}))"

    def new_label(self, prefix: str) -> str:
        self.label_count += 1
        return f"{prefix}{self.label_count}"

    # -- expressions --------------------------------------------------------------------------------

    def expression(self, scope: _Scope, depth: int) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self.leaf(scope)
        kinds = [self.binary, self.binary, self.binary, self.unary, self.load, self.select, self.wide]
        if scope.callees and scope.loop_depth == 0:
            kinds.append(self.call)
        return rng.choice(kinds)(scope, depth)

    def leaf(self, scope: _Scope) -> str:
        rng = self.rng
        kinds = ["const", "const", "local"] + ["global"] * bool(self.globals) + ["getchar"] * self.uses_getchar
        kind = rng.choice(kinds)
        if kind == "local":
            return f"(local.get {rng.choice(scope.all_locals)})"
        if kind == "global":
            return f"(global.get $g{rng.randrange(len(self.globals))})"
        if kind == "getchar":
            return "(call $getchar)"
        return f"(i32.const {self.constant()})"

    def constant(self) -> int:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(EDGE_VALUES)
        return rng.choice([rng.randint(-100, 100), rng.randint(-(2**31), 2**31 - 1)])

    def binary(self, scope: _Scope, depth: int) -> str:
        op = self.rng.choice(BINARY_OPS)
        left = self.expression(scope, depth - 1)
        right = self.expression(scope, depth - 1)
        if op in DIVISION_OPS and self.rng.random() < NONZERO_DIVISOR_CHANCE:
            right = f"(i32.or {right} (i32.const 1))"
        return f"(i32.{op} {left} {right})"

    def unary(self, scope: _Scope, depth: int) -> str:
        return f"(i32.{self.rng.choice(UNARY_OPS)} {self.expression(scope, depth - 1)})"

    def load(self, scope: _Scope, depth: int) -> str:
        op, width = self.rng.choice(LOADS)
        offset, address = self.address(scope, width)
        return f"({op} offset={offset} {address})"

    def select(self, scope: _Scope, depth: int) -> str:
        parts = [self.expression(scope, depth - 1) for _ in range(3)]
        return f"(select {' '.join(parts)})"

    def call(self, scope: _Scope, depth: int) -> str:
        callee = self.rng.choice(scope.callees)
        args = "".join(f" {self.expression(scope, depth - 1)}" for _ in range(callee.params))
        call = f"(call ${callee.name}{args})"
        if callee.has_result:
            return call
        # A void callee still runs for its effects; the expression then yields a constant.
        return f"(block (result i32) {call} (i32.const {self.constant()}))"

    def wide(self, scope: _Scope, depth: int) -> str:
        """An i32 read from i64 arithmetic: a wrapped result, its high word, a comparison or eqz."""
        rng = self.rng
        kind = rng.choice(["wrap", "high", "compare", "eqz"])
        if kind == "compare":
            op = rng.choice(WIDE_COMPARISONS)
            return f"(i64.{op} {self.wide_value(scope, depth - 1)} {self.wide_value(scope, depth - 1)})"
        if kind == "eqz":
            return f"(i64.eqz {self.wide_value(scope, depth - 1)})"
        value = self.wide_value(scope, depth)
        if kind == "high":
            value = f"(i64.shr_u {value} (i64.const 32))"
        return f"(i32.wrap_i64 {value})"

    def wide_value(self, scope: _Scope, depth: int) -> str:
        """An i64 expression."""
        rng = self.rng
        kind = rng.choice(["extend_s", "extend_u", "const", "load"] + ["binary"] * 3 * (depth > 0))
        if kind == "binary":
            op = rng.choice(WIDE_BINARY_OPS)
            left, right = self.wide_value(scope, depth - 1), self.wide_value(scope, depth - 1)
            if op in DIVISION_OPS and rng.random() < NONZERO_DIVISOR_CHANCE:
                right = f"(i64.or {right} (i64.const 1))"
            return f"(i64.{op} {left} {right})"
        if kind == "const":
            value = rng.choice(WIDE_EDGE_VALUES) if rng.random() < 0.5 else rng.randint(-(2**63), 2**63 - 1)
            return f"(i64.const {value})"
        if kind == "load":
            op, width = rng.choice(WIDE_LOADS)
            offset, address = self.address(scope, width)
            return f"({op} offset={offset} {address})"
        signedness = kind[-1]  # extend_s / extend_u
        return f"(i64.extend_i32_{signedness} {self.expression(scope, max(depth - 1, 0))})"

    def address(self, scope: _Scope, width: int) -> tuple[int, str]:
        """(static offset, address expression) of an access inside the first page."""
        rng = self.rng
        offset = rng.choice([0, 0, rng.randint(1, MAX_STATIC_OFFSET)])
        if rng.random() < 0.5:
            return offset, f"(i32.const {rng.randrange(PAGE_BYTES - MAX_STATIC_OFFSET - width)})"
        return offset, f"(i32.and {self.expression(scope, 1)} (i32.const {ADDRESS_MASK}))"


def random_module(rng: random.Random, uses_getchar: bool = False) -> RandomModule:
    return ModuleGenerator(rng, uses_getchar).module()
