"""Every f32/f64 instruction that computes, on the reference VM, against wasmtime, bit for bit.

Each instruction runs in a module whose exports take and return the operands' bits as integers (the
float reinterpreted inside), so both sides see integers. wasmtime runs with Cranelift's NaN
canonicalisation, which turns every NaN an arithmetic instruction produces into the canonical NaN with a
clear sign bit: what the float library gives (frontend/softfloat.c), and a NaN both of the spec's rules
(nan:canonical, nan:arithmetic) accept. abs, neg and copysign keep payloads on both sides.

Edge values (zeros, subnormals, the largest finite, infinities, quiet and signalling NaNs of both signs,
halfway rounding cases, the integer conversion bounds) in one batch per instruction, then hypothesis
patterns biased towards the same classes.
"""

import functools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.frontend.frontend_oracle import TrapReason, lowered
from wasmformer.frontend import Call
from wasmformer.frontend.words import float_instruction_type
from wasmformer.oracles import refvm

wasmtime = pytest.importorskip("wasmtime")
pytestmark = pytest.mark.oracle

BITS = {"f32": 32, "f64": 64, "i32": 32, "i64": 64}
INTEGER_OF = {"f32": "i32", "f64": "i64", "i32": "i32", "i64": "i64"}
UNARY = ["abs", "neg", "sqrt", "ceil", "floor", "trunc", "nearest"]
BINARY = ["add", "sub", "mul", "div", "min", "max", "copysign"]
COMPARE = ["eq", "ne", "lt", "gt", "le", "ge"]
CONVERSIONS = (
    [f"{i}.trunc_{f}_{s}" for i in ("i32", "i64") for f in ("f32", "f64") for s in "su"]
    + [f"{i}.trunc_sat_{f}_{s}" for i in ("i32", "i64") for f in ("f32", "f64") for s in "su"]
    + [f"{f}.convert_{i}_{s}" for f in ("f32", "f64") for i in ("i32", "i64") for s in "su"]
    + ["f32.demote_f64", "f64.promote_f32"])
INSTRUCTIONS = ([f"{t}.{op}" for t in ("f32", "f64") for op in UNARY + BINARY + COMPARE] + CONVERSIONS)
WASMTIME_TRAPS = {wasmtime.TrapCode.INTEGER_OVERFLOW: TrapReason.INTEGER_OVERFLOW,
                  wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: TrapReason.INVALID_CONVERSION}


def _bits(kind: str, value: float) -> int:
    return struct.unpack("<Q" if kind == "f64" else "<I", struct.pack("<d" if kind == "f64" else "<f", value))[0]


def _edges(kind: str) -> list[int]:
    """Bit patterns of the classes where soft float goes wrong."""
    if kind in ("i32", "i64"):
        n = BITS[kind]
        return sorted({0, 1, 2, 3, (1 << n) - 1, 1 << (n - 1), (1 << (n - 1)) - 1, (1 << (n - 1)) + 1,
                       (1 << 24) + 1, (1 << 53) + 1 & ((1 << n) - 1), 0x7FFFFFC0, 0xFFFFFF80, 12345678901 % (1 << n)})
    sign = 1 << (BITS[kind] - 1)
    exponent_bits, fraction_bits = (8, 23) if kind == "f32" else (11, 52)
    infinity = ((1 << exponent_bits) - 1) << fraction_bits
    quiet = 1 << (fraction_bits - 1)
    values = [0.0, 1.0, 1.5, 2.5, 0.5, 3.0, 2.0, 0.1, 1e10, 123456.789, 4294967295.5, 4294967296.0,
              2147483647.5, 2147483648.0, -2147483648.0, -2147483649.0, -2147483648.5, 9.2233720368547758e18,
              1.8446744073709552e19, -9.2233720368547758e18, 0.49999999999999994, 4503599627370497.0]
    patterns = {_bits(kind, v) for v in values if kind == "f64" or abs(v) < 3e38}
    patterns |= {1, 2, (1 << fraction_bits) - 1, 1 << fraction_bits, infinity - 1, infinity,
                 infinity | quiet, infinity | 1, infinity | quiet | 5, (1 << fraction_bits) | 1}
    return sorted(patterns | {p | sign for p in patterns})


def _module(name: str) -> str:
    """One export: the operands' bits in, the result's bits out."""
    signature = float_instruction_type(name)
    params = " ".join(INTEGER_OF[kind] for kind in signature.params)
    result = INTEGER_OF[signature.results[0]]
    operands = " ".join(f"(local.get {i})" if kind in ("i32", "i64") else f"({kind}.reinterpret_{INTEGER_OF[kind]}"
                        f" (local.get {i}))" for i, kind in enumerate(signature.params))
    body = f"({name} {operands})"
    if signature.results[0] in ("f32", "f64"):
        body = f"({result}.reinterpret_{signature.results[0]} {body})"
    return f'(module (func (export "op") (param {params}) (result {result}) {body}))'


@functools.lru_cache(maxsize=None)
def _wasmtime_function(name: str):
    config = wasmtime.Config()
    config.cranelift_nan_canonicalization = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, wasmtime.wat2wasm(_module(name))), [])
    return store, instance.exports(store)["op"]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def expected(name: str, args: tuple[int, ...]) -> tuple[bytes, TrapReason | None]:
    store, function = _wasmtime_function(name)
    signature = float_instruction_type(name)
    try:
        value = function(store, *[_signed(a, BITS[kind]) for a, kind in zip(args, signature.params)])
    except wasmtime.Trap as trap:
        return b"", WASMTIME_TRAPS[trap.trap_code]
    size = BITS[signature.results[0]] // 8
    return (value % (1 << 8 * size)).to_bytes(size, "little"), None


def assert_batch(name: str, argument_lists: list[tuple[int, ...]]) -> None:
    """The calls that do not trap in one program; each trapping call in a program of its own."""
    rows = [(args, *expected(name, args)) for args in argument_lists]
    plain = [(args, output) for args, output, trap in rows if trap is None]
    if plain:
        program = lowered(_module(name), calls=[Call("op", args) for args, _ in plain])
        result = refvm.run(program, max_steps=50_000_000)
        assert result.trap is None and result.halted, (name, result.trap)
        start = 0
        for args, output in plain:
            actual = result.output[start:start + len(output)]
            assert actual == output, f"{name}{tuple(hex(a) for a in args)}: {actual.hex()} != wasmtime {output.hex()}"
            start += len(output)
    for args, _, trap in [row for row in rows if row[2] is not None]:
        result = refvm.run(lowered(_module(name), calls=[Call("op", args)]), max_steps=1_000_000)
        assert result.trap is trap, f"{name}{tuple(hex(a) for a in args)}: trap {result.trap} != wasmtime {trap}"


def _argument_lists(name: str) -> list[tuple[int, ...]]:
    kinds = float_instruction_type(name).params
    if len(kinds) == 1:
        return [(a,) for a in _edges(kinds[0])]
    edges = _edges(kinds[0])[::2] if name.startswith("f64") else _edges(kinds[0])[::2]
    return [(a, b) for a in edges for b in edges[::3]]


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_edge_cases(name):
    assert_batch(name, _argument_lists(name))


def _pattern(kind: str):
    """Random bits, a third of them from the edge classes' exponents (zero, subnormal, max: inf/NaN)."""
    n = BITS[kind]
    if kind in ("i32", "i64"):
        return st.one_of(st.integers(0, (1 << n) - 1), st.integers(0, min(1 << 33, (1 << n) - 1)))
    exponent_bits, fraction_bits = (8, 23) if kind == "f32" else (11, 52)
    special = st.builds(lambda sign, exponent, fraction: sign << (n - 1) | exponent << fraction_bits | fraction,
                        st.integers(0, 1), st.sampled_from([0, 1, (1 << exponent_bits) - 1, (1 << exponent_bits) - 2,
                                                            (1 << (exponent_bits - 1)) - 1]),
                        st.integers(0, (1 << fraction_bits) - 1))
    return st.one_of(st.integers(0, (1 << n) - 1), special)


@pytest.mark.parametrize("name", INSTRUCTIONS)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_random_bit_patterns(name, data):
    kinds = float_instruction_type(name).params
    batch = [tuple(data.draw(_pattern(kind)) for kind in kinds) for _ in range(8)]
    assert_batch(name, batch)


def test_halfway_cases_round_to_even():
    """Sums and products exactly halfway between two doubles (and f32s) round to the even one."""
    one, ulp = _bits("f64", 1.0), 1
    halfway = [(one, _bits("f64", 2.0 ** -53)), (one + 1, _bits("f64", 2.0 ** -53)),
               (_bits("f64", 2.0 ** 53), _bits("f64", 1.0)), (_bits("f64", 2.0 ** 53 + 2), _bits("f64", 1.0))]
    assert_batch("f64.add", halfway)
    assert_batch("f32.add", [(_bits("f32", 1.0), _bits("f32", 2.0 ** -24)),
                             (_bits("f32", 1.0) + ulp, _bits("f32", 2.0 ** -24))])
    assert_batch("f64.nearest", [(_bits("f64", v),) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 4503599627370495.5)])


def test_the_float_library_is_integer_code_without_memory_or_cycles():
    """Every float helper's reachable code: no load, store or global (the library has no memory of its own),
    and the float instructions left in it call other helpers, never back into themselves."""
    from wasmformer.frontend.decode import decode_body
    from wasmformer.frontend.helpers import float_library, helper_library
    from wasmformer.frontend.words import is_float_arithmetic

    library = float_library()
    imported = len(library.imported_functions)
    uses: dict[str, set[str]] = {}
    for name, (kind, start) in library.exports.items():
        if kind != "func":
            continue
        seen, pending, used = set(), [start], set()
        while pending:
            index = pending.pop()
            if index in seen or index < imported:
                continue
            seen.add(index)
            for instruction in decode_body(library, library.defined_function(index)):
                assert not any(word in instruction.name for word in ("load", "store", "global.")), (name, instruction)
                if instruction.name == "call":
                    pending.append(instruction.args[0])
                elif is_float_arithmetic(instruction.name):
                    used.add(instruction.name)
        uses[name] = used
    sign_helpers = {name for name in helper_library().exports if is_float_arithmetic(name)}
    assert set(uses) | sign_helpers == set(INSTRUCTIONS)

    def reaches(name: str, target: str, path: tuple[str, ...] = ()) -> bool:
        return any(used == target or (used not in path and reaches(used, target, path + (used,)))
                   for used in uses.get(name, ()))

    assert not [name for name in uses if reaches(name, name)]
