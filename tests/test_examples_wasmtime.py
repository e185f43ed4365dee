"""The C examples, the runtime header and the toolchain, checked under wasmtime.

wasmtime is the independent output oracle: every example must print exactly its
NAME.expected, and the main examples are also re-computed here in plain Python so
that the .expected files themselves are checked.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

wasmtime = pytest.importorskip("wasmtime")

from wasmformer.frontend.errors import FrontendError  # noqa: E402
from wasmformer.frontend.toolchain import DEFAULT_MEMORY_LIMIT, DEFAULT_STACK_SIZE, compile_c  # noqa: E402
from wasmformer.oracles.wasmtime_runner import (  # noqa: E402
    PROFILE_LINK_FLAGS,
    WasmOracleError,
    execute_wasm,
    run_wasm,
)

pytestmark = [pytest.mark.oracle, pytest.mark.wasmtime]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

# Runs whose program is another example's C file, fed a different input.
SHARED_SOURCES = {"sudoku_hard": "sudoku"}

# The test suite runs every example through the transformer, so runs stay short (wasm instructions, as
# wasmtime fuel), except these deliberately long ones.
LONG_RUNS = {"sudoku_hard", "deep_recursion"}
SHORT_RUN_INSTRUCTION_BUDGET = 250_000

RUN_NAMES = sorted(path.stem for path in EXAMPLES_DIR.glob("*.expected"))


def source_of(run_name: str) -> Path:
    return EXAMPLES_DIR / f"{SHARED_SOURCES.get(run_name, run_name)}.c"


def input_of(run_name: str) -> bytes:
    input_file = EXAMPLES_DIR / f"{run_name}.input"
    return input_file.read_bytes() if input_file.exists() else b""


@cache
def profiled_run(run_name: str):
    """Compiled with the layout symbols exported, so the run reports its memory use."""
    wasm = compile_c(source_of(run_name), extra_flags=PROFILE_LINK_FLAGS)
    return execute_wasm(wasm, input_of(run_name))


@cache
def plain_module(source_name: str) -> bytes:
    return compile_c(EXAMPLES_DIR / f"{source_name}.c")


def output_of(run_name: str) -> str:
    return run_wasm(plain_module(SHARED_SOURCES.get(run_name, run_name)), input_of(run_name)).decode()


# ------------------------------------------------------------------ every example


def test_every_example_has_an_expected_output():
    sources = {path.stem for path in EXAMPLES_DIR.glob("*.c")}
    assert sources <= set(RUN_NAMES)
    assert {"hello", "long_addition", "collatz", "fibonacci", "sudoku", "sudoku_hard", "hungarian", "hash_prng",
            "hash64", "big_memory", "deep_recursion"} <= set(RUN_NAMES)


@pytest.mark.parametrize("run_name", RUN_NAMES)
def test_example_prints_its_expected_output(run_name):
    expected = (EXAMPLES_DIR / f"{run_name}.expected").read_bytes()
    assert expected, "an empty .expected file would check nothing"
    assert output_of(run_name).encode() == expected


@pytest.mark.parametrize("run_name", RUN_NAMES)
def test_example_fits_the_machine(run_name):
    run = profiled_run(run_name)
    assert run.memory is not None
    assert run.memory.memory_end <= DEFAULT_MEMORY_LIMIT
    assert 0 <= run.memory.stack_bytes_used < DEFAULT_STACK_SIZE
    assert run.memory.heap_base >= DEFAULT_STACK_SIZE, "the stack must come first in memory"
    if run_name not in LONG_RUNS:
        assert run.instructions <= SHORT_RUN_INSTRUCTION_BUDGET


# ---------------------------------------------------------- module shape (opcodes)

# Opcodes that read or produce i64, f32 or f64 values (loads, stores, constants,
# comparisons, arithmetic, conversions). i32.extend8_s/16_s (0xC0, 0xC1) are i32.
WIDE_OR_FLOAT_OPCODES = frozenset(
    [*range(0x29, 0x2C), *range(0x30, 0x36), *range(0x37, 0x3A), *range(0x3C, 0x3F), *range(0x42, 0x45)]
    + [*range(0x50, 0x67), *range(0x79, 0xC0), *range(0xC2, 0xC5)]
)
I32_TYPE = 0x7F
MEMARG_OPCODES = range(0x28, 0x3F)
# Opcodes of the WebAssembly 1.0 ("MVP") instruction set, and the bulk memory prefix (-mbulk-memory).
BULK_MEMORY_PREFIX = 0xFC
MVP_OPCODES = frozenset([*range(0x00, 0x12), 0x1A, 0x1B, *range(0x20, 0x25), *range(0x28, 0x41), *range(0x41, 0xC0)]) - {
    0x06,
    0x07,
    0x08,
    0x09,
    0x0A,
} | {BULK_MEMORY_PREFIX}
# Bytes of immediates after a bulk memory instruction's sub-opcode: memory.init, data.drop, memory.copy, memory.fill.
BULK_MEMORY_IMMEDIATES = {8: ("leb", 1), 9: ("leb", 0), 10: (None, 2), 11: (None, 1)}


def read_leb(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def sections(wasm: bytes) -> dict[int, bytes]:
    found, position = {}, 8  # after the magic number and version
    while position < len(wasm):
        section_id = wasm[position]
        size, position = read_leb(wasm, position + 1)
        found.setdefault(section_id, wasm[position : position + size])
        position += size
    return found


def skip_immediates(opcode: int, code: bytes, position: int) -> int:
    """Position after the immediates of an MVP or bulk memory instruction."""
    if opcode == BULK_MEMORY_PREFIX:
        sub_opcode, position = read_leb(code, position)
        index, extra = BULK_MEMORY_IMMEDIATES[sub_opcode]
        if index == "leb":
            position = read_leb(code, position)[1]
        return position + extra
    if opcode in (0x02, 0x03, 0x04, 0x0C, 0x0D, 0x10, *range(0x20, 0x25), 0x3F, 0x40, 0x41, 0x42):
        return read_leb(code, position)[1]
    if opcode == 0x0E:
        count, position = read_leb(code, position)
        for _ in range(count + 1):
            position = read_leb(code, position)[1]
        return position
    if opcode == 0x11 or opcode in MEMARG_OPCODES:
        return read_leb(code, read_leb(code, position)[1])[1]
    return position + {0x43: 4, 0x44: 8}.get(opcode, 0)


def function_bodies(wasm: bytes):
    """(local types, opcodes) of every function in the code section."""
    code = sections(wasm)[10]
    count, position = read_leb(code, 0)
    for _ in range(count):
        size, position = read_leb(code, position)
        end = position + size
        group_count, cursor = read_leb(code, position)
        local_types = []
        for _ in range(group_count):
            _, cursor = read_leb(code, cursor)
            local_types.append(code[cursor])
            cursor += 1
        opcodes = []
        while cursor < end:
            opcode = code[cursor]
            assert opcode in MVP_OPCODES, f"opcode {opcode:#x} outside the MVP set"
            opcodes.append(opcode)
            cursor = skip_immediates(opcode, code, cursor + 1)
        yield local_types, opcodes
        position = end


I64_TYPE = 0x7E
# Opcodes that compute with floats (arithmetic, comparisons, numeric conversions): the machine has none.
FLOAT_ARITHMETIC_OPCODES = frozenset([*range(0x5B, 0x67), *range(0x8B, 0xA7), *range(0xA8, 0xAC), *range(0xAE, 0xBC)])
@pytest.mark.parametrize("source_name", sorted(path.stem for path in EXAMPLES_DIR.glob("*.c")))
def test_example_compiles_to_mvp_and_bulk_memory_code(source_name):
    """MVP opcodes and memory.fill / memory.copy only. The libc's printf holds float code (%f): it is lowered to
    traps that these programs never reach (their runs on the reference VM and the model end without a trap)."""
    bodies = list(function_bodies(plain_module(source_name)))
    assert bodies
    for local_types, opcodes in bodies:
        assert opcodes[-1] == 0x0B  # every body ends with `end`: the walk stayed aligned


def test_the_64_bit_example_uses_i64():
    opcodes = {op for _, body in function_bodies(plain_module("hash64")) for op in body}
    assert {0x7C, 0x7E, 0x80, 0x88} <= opcodes  # i64.add, i64.mul, i64.div_u, i64.shr_u


def test_opcode_scanner_sees_i64_code():
    wasm = compile_c("long long twice(long long x) { return x * 2; }\nint main(void) { return (int)twice(21); }\n", opt="-O0")
    opcodes = {op for _, body in function_bodies(wasm) for op in body}
    assert WIDE_OR_FLOAT_OPCODES & opcodes


@pytest.mark.parametrize("source_name", sorted(path.stem for path in EXAMPLES_DIR.glob("*.c")))
def test_example_module_is_a_wasi_command_the_machine_runs(source_name):
    from wasmformer.frontend.helpers import wasi_signatures

    module = wasmtime.Module(wasmtime.Engine(), plain_module(source_name))
    imports = {(item.module, item.name) for item in module.imports}
    assert {module for module, _ in imports} == {"wasi_snapshot_preview1"}
    assert {name for _, name in imports} <= set(wasi_signatures())
    assert {"fd_write"} <= {name for _, name in imports}
    exports = {item.name: item.type for item in module.exports}
    assert set(exports) == {"memory", "_start"}
    start_type = exports["_start"]
    assert list(start_type.params) == [] and list(start_type.results) == []


# ---------------------------------------------- independent Python re-computation


def test_long_addition_sum_is_right():
    first, second = input_of("long_addition").split()
    assert len(first) >= 40 and len(second) >= 40
    lines = output_of("long_addition").splitlines()
    assert [line.split()[-1] for line in lines] == [first.decode(), second.decode(), str(int(first) + int(second))]
    assert len({len(line) for line in lines}) == 1, "the columns are aligned"


def collatz_steps(start: int) -> int:
    steps = 0
    while start != 1:
        start = start // 2 if start % 2 == 0 else 3 * start + 1
        steps += 1
    return steps


def test_collatz_matches_python():
    lines = output_of("collatz").splitlines()
    trajectory = [7]
    while trajectory[-1] != 1:
        value = trajectory[-1]
        trajectory.append(value // 2 if value % 2 == 0 else 3 * value + 1)
    assert lines[0] == " ".join(map(str, trajectory))
    for line in lines[1:-1]:
        start, steps = map(int, re.fullmatch(r"steps\((\d+)\) = (\d+)", line).groups())
        assert steps == collatz_steps(start)
    limit, best_start, best_steps = map(int, re.findall(r"\d+", lines[-1]))
    longest = max(range(1, limit), key=lambda start: (collatz_steps(start), -start))
    assert (best_start, best_steps) == (longest, collatz_steps(longest))


def test_fibonacci_matches_python():
    lines = output_of("fibonacci").splitlines()
    count = int(re.search(r"\d+", lines[0]).group())
    fib = [0, 1]
    while len(fib) < count:
        fib.append(fib[-1] + fib[-2])
    assert list(map(int, lines[1].split())) == fib
    for line in lines[2:]:
        n, value = map(int, re.fullmatch(r"fib_recursive\((\d+)\) = (\d+) ok", line).groups())
        assert value == fib[n]
    assert len(lines) > 2


def parse_hungarian_input() -> list[list[int]]:
    numbers = list(map(int, input_of("hungarian").split()))
    size = numbers[0]
    assert size == 10
    return [numbers[1 + row * size : 1 + (row + 1) * size] for row in range(size)]


def min_assignment_cost(cost: list[list[int]]) -> int:
    """Exact minimum by dynamic programming over the set of used columns (2^n states)."""
    size = len(cost)
    best = {0: 0}
    for row in range(size):
        next_best: dict[int, int] = {}
        for used, total in best.items():
            for column in range(size):
                if not used >> column & 1:
                    key = used | 1 << column
                    next_best[key] = min(next_best.get(key, total + cost[row][column]), total + cost[row][column])
        best = next_best
    return best[(1 << size) - 1]


def test_hungarian_assignment_is_optimal():
    cost = parse_hungarian_input()
    output = output_of("hungarian")
    pairs = [tuple(map(int, match)) for match in re.findall(r"worker +(\d+) -> job +(\d+) +cost +(\d+)", output)]
    assert sorted(worker for worker, _, _ in pairs) == list(range(10))
    assert sorted(job for _, job, _ in pairs) == list(range(10)), "a perfect matching"
    assert all(cost[worker][job] == printed for worker, job, printed in pairs)
    total = int(re.search(r"total cost (\d+)", output).group(1))
    assert total == sum(printed for _, _, printed in pairs) == min_assignment_cost(cost)
    # The printed potentials are a dual certificate of optimality.
    u = list(map(int, re.search(r"^u:(.*)$", output, re.M).group(1).split()))
    v = list(map(int, re.search(r"^v:(.*)$", output, re.M).group(1).split()))
    assert all(u[i] + v[j] <= cost[i][j] for i in range(10) for j in range(10))
    assert sum(u) + sum(v) == total


MASK32 = 0xFFFFFFFF


def fnv1a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & MASK32
    return value


def rotl32(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & MASK32


def murmur3_32(data: bytes, seed: int) -> int:
    def mix(block: int) -> int:
        return rotl32(block * 0xCC9E2D51 & MASK32, 15) * 0x1B873593 & MASK32

    value = seed
    full = len(data) // 4 * 4
    for start in range(0, full, 4):
        value ^= mix(int.from_bytes(data[start : start + 4], "little"))
        value = (rotl32(value, 13) * 5 + 0xE6546B64) & MASK32
    if len(data) % 4:
        value ^= mix(int.from_bytes(data[full:], "little"))
    value ^= len(data)
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        value = (value ^ (value >> shift)) * factor & MASK32
    return value ^ (value >> 16)


def xorshift32_stream(state: int):
    while True:
        state ^= state << 13 & MASK32
        state ^= state >> 17
        state ^= state << 5 & MASK32
        yield state


def test_hash_reference_values():
    assert fnv1a(b"The quick brown fox jumps over the lazy dog") == 0x048FFF90  # published test vector
    assert murmur3_32(b"", 0) == 0 and murmur3_32(b"", 1) == 0x514E28B7  # published test vectors


def test_hash_prng_matches_python():
    text = input_of("hash_prng")
    fnv, murmur = fnv1a(text), murmur3_32(text, 0x9747B28C)
    expected = [f"input: {len(text)} bytes", f"fnv1a:   {fnv:08x}", f"murmur3: {murmur:08x}"]
    for number, line in enumerate(text.rstrip(b"\n").split(b"\n")):
        expected.append(f"line {number}: fnv1a {fnv1a(line):08x} ({len(line)} bytes)")
    xorshift, lcg = xorshift32_stream(fnv), murmur
    for _ in range(6):
        lcg = (lcg * 1664525 + 1013904223) & MASK32
        expected.append(f"xorshift32 {next(xorshift):08x}  lcg {lcg:08x}  {lcg >> 16}")
    rolls = xorshift32_stream(fnv)
    counts = [0] * 6
    for _ in range(200):
        counts[next(rolls) % 6] += 1
    expected += [f"die {side + 1}: {count:3d}" for side, count in enumerate(counts)]
    assert output_of("hash_prng").splitlines() == expected


def test_big_memory_matches_python():
    """The hash table of examples/big_memory.c, re-done in Python (its figures, not just its shape)."""
    slots, keys_count, mask = 65536, 600, 65535
    keys, counts = [0] * slots, [0] * slots
    probes = 0

    def find(key: int) -> int:
        nonlocal probes
        slot = ((key ^ (key >> 15)) * 2654435761) & MASK32 & mask
        while keys[slot] and keys[slot] != key:
            slot, probes = (slot + 1) & mask, probes + 1
        return slot

    def draws():
        state = 2026
        for _ in range(keys_count):
            state = (state * 1103515245 + 12345) & MASK32
            yield ((state >> 1) | 1) % 150000 + 1

    for key in draws():
        slot = find(key)
        keys[slot], counts[slot] = key, counts[slot] + 1
    found = checksum = 0
    for key in draws():
        slot = find(key)
        found += keys[slot] == key
        checksum = (checksum * 31 + counts[slot] + slot) & MASK32
    absent = sum(keys[find(150001 + i * 7)] == 0 for i in range(keys_count))
    first = output_of("big_memory").splitlines()[0]
    assert first == (f"found {found} of {keys_count}, absent {absent} of {keys_count}, {probes} extra probes, "
                     f"checksum {checksum}")


def test_deep_recursion_matches_python():
    """examples/deep_recursion.c's two recursions, unrolled into loops in Python."""
    mix = 1
    for n in range(1, 10_001):
        mix = (mix * 31 + n) % 1_000_003
    step, twists = 5, []
    for n in range(2_000, 0, -1):  # on the way down: each frame's twist and the step it passes on
        twisted = n * step % 7919
        twists.append((n, twisted))
        step = twisted + 1
    weave = step
    for n, twisted in reversed(twists):  # on the way back up
        weave = (weave ^ twisted) + n % 3
    assert output_of("deep_recursion") == f"mix(10000) = {mix}\nweave(2000) = {weave}\n"


def test_integrate_matches_python():
    """examples/integrate.c's two rules in Python's doubles (the same operations in the same order)."""
    import math

    def f(x: float) -> float:
        return 4.0 / (1.0 + x * x)

    lines = []
    for n in (2, 4, 8):
        h = 1.0 / n
        trapezoid = (f(0.0) + f(1.0)) / 2
        simpson = f(0.0) + f(1.0)
        for i in range(1, n):
            trapezoid += f(i * h)
            simpson += (4 if i % 2 else 2) * f(i * h)
        t, s = trapezoid * h, simpson * h / 3
        lines.append(f"n={n} trapezoid {t:.9f} (error {t - math.pi:+.2e}) simpson {s:.9f} (error {s - math.pi:+.2e})")
    assert output_of("integrate") == "\n".join(lines) + "\n"


@pytest.mark.parametrize("run_name", ["sudoku", "sudoku_hard"])
def test_sudoku_solution_is_valid_and_keeps_the_clues(run_name):
    clues = [0 if c in "0." else int(c) for c in input_of(run_name).decode().strip()]
    assert len(clues) == 81
    digits = [int(c) for c in output_of(run_name) if c.isdigit()]
    assert len(digits) == 81
    rows = [digits[9 * r : 9 * r + 9] for r in range(9)]
    columns = [digits[c::9] for c in range(9)]
    boxes = [[rows[3 * br + i][3 * bc + j] for i in range(3) for j in range(3)] for br in range(3) for bc in range(3)]
    assert all(sorted(unit) == list(range(1, 10)) for unit in rows + columns + boxes)
    assert all(clue in (0, digit) for clue, digit in zip(clues, digits))


def test_sudoku_reports_clashing_clues():
    clashing = b"55" + b"0" * 79
    assert run_wasm(plain_module("sudoku"), clashing) == b"invalid puzzle\n"


def test_loops_that_become_memset_calls_still_link():
    # A zeroing loop that clang turns into a call to memset must still link.
    program = "#include <stdio.h>\nstatic char buffer[300];\nint main(void) {\n"
    program += "    for (int i = 0; i < 300; i++) buffer[i] = 0;\n    buffer[7] = 'k';\n"
    program += "    putchar(buffer[7]);\n    return 3;\n}\n"
    run = execute_wasm(compile_c(program))
    assert (run.output, run.exit_value) == (b"k", 3)


# ------------------------------------------------------ toolchain and runner errors


def test_syntax_error_reports_the_compiler_message():
    with pytest.raises(FrontendError) as error:
        compile_c("int main(void) {\n    return 1 +;\n}\n")
    assert re.search(r"input\.c:2:\d+: error: expected expression", str(error.value))


def test_error_in_a_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("int main(void) { undeclared_name = 3; return 0; }\n")
    with pytest.raises(FrontendError, match=r"broken\.c:1:\d+: error: use of undeclared identifier"):
        compile_c(broken)


def test_missing_file_and_missing_compiler_are_frontend_errors(tmp_path):
    with pytest.raises(FrontendError, match="no such C file"):
        compile_c(tmp_path / "absent.c")
    with pytest.raises(FrontendError, match="not found"):
        compile_c("int main(void) { return 0; }\n", clang=str(tmp_path / "no-such-clang"))


def test_compile_leaves_no_temp_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    compile_c("int main(void) { return 0; }\n")
    assert list(tmp_path.iterdir()) == []


def test_stack_comes_first_and_has_the_requested_size():
    wasm = compile_c("int main(void) { return 0; }\n", extra_flags=PROFILE_LINK_FLAGS, stack_size=2048)
    store = wasmtime.Store()
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(store.engine)
    linker.define_wasi()
    exports = linker.instantiate(store, wasmtime.Module(store.engine, wasm)).exports(store)
    assert (exports["__stack_low"].value(store), exports["__stack_high"].value(store)) == (0, 2048)
    assert exports["__heap_base"].value(store) >= 2048


def test_runner_reports_traps_and_fuel_exhaustion():
    trapping = compile_c("#include <stdio.h>\nint main(void) { putchar('a'); fflush(stdout); __builtin_trap(); }\n")
    with pytest.raises(WasmOracleError, match="trapped after printing b'a'"):
        run_wasm(trapping)
    endless = compile_c("int main(void) { volatile int spin = 1; while (spin) {} return 0; }\n")
    with pytest.raises(WasmOracleError, match="fuel"):
        run_wasm(endless, fuel=10_000)


def test_runner_rejects_foreign_imports():
    wasm = compile_c(
        '__attribute__((import_module("env"), import_name("sneaky"))) int sneaky(void);\n'
        "int main(void) { return sneaky(); }\n"
    )
    with pytest.raises(WasmOracleError, match="unsupported import env.sneaky"):
        run_wasm(wasm)
