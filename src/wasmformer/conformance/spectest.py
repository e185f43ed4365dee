"""Conformance harness: run the official WebAssembly spec scripts (.wast) on the reference VM.

For every assertion of a script the harness builds a VMProgram with the front
end (entry stub = the invoked export, results output as bytes), runs it on the
reference VM and compares. Every assertion ends in exactly one bucket:

    passed                    the VM agreed with the script
    unsupported: <reason>     the script needs something the machine does not
                              have (i64, floats, imports, ...); the reason says what
    failed                    a real disagreement (listed with file and line)

Instances and state: each program starts from a fresh instantiation, so for a
module whose code can change state (stores, global.set, memory.grow) the
program first replays the earlier successful invocations on that module
(results dropped). Invocations that trapped are not replayed (their partial
effects are lost: a documented approximation). After a state-changing
invocation the machine cannot run (say, of an i64 function), the state is
uncertain: later assertions on that module still count as passed when the VM
gives the expected answer, and as unsupported (not failed) when it does not. The scripts live outside the
repository: ``../shared/spec-tests`` next to the repo, or $WASMFORMER_SPEC_TESTS.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wasmformer.frontend.decode import Module, decode_body, decode_module
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.helpers import helper_libraries
from wasmformer.frontend.lower import Call, lower
from wasmformer.vm.program import TrapReason, VMProgram
from wasmformer.oracles import refvm
from wasmformer.conformance.wast import SList, read_script
from wasmformer.machine import tokens as T

SPEC_TESTS_ENV = "WASMFORMER_SPEC_TESTS"
SPEC_TESTS_RELATIVE = Path("..") / "shared" / "spec-tests"  # from the repository root
# The machine's memory (modules that start with more are refused; memory.grow stops there).
SPEC_MEMORY_LIMIT = T.MAX_MEMORY
MAX_STEPS_PER_ASSERTION = 2_000_000
STEP_BUDGET = f"more than {MAX_STEPS_PER_ASSERTION:,} steps"  # a run the harness does not wait for
PROGRAM_NAME = "program"  # every assertion's program (its argv[0]: the helpers are decoded for it once)
BEYOND_MACHINE = "memory beyond the machine's"  # memory wasm would have and the machine has not
I32_BYTES = 4

TRAP_MESSAGES = {  # the start of a script's trap message -> our reason
    "unreachable": TrapReason.UNREACHABLE,
    "integer divide by zero": TrapReason.DIVIDE_BY_ZERO,
    "integer overflow": TrapReason.INTEGER_OVERFLOW,
    "out of bounds memory access": TrapReason.OUT_OF_BOUNDS_MEMORY,
    "undefined element": TrapReason.INDIRECT_CALL,
    "uninitialized element": TrapReason.INDIRECT_CALL,
    "indirect call type mismatch": TrapReason.INDIRECT_CALL,
    "call stack exhausted": TrapReason.CALL_STACK_EXHAUSTED,
    "invalid conversion to integer": TrapReason.INVALID_CONVERSION,
}

REFUSAL_REASONS = [  # a phrase in a FrontendError -> the unsupported reason it stands for
    ("no floating point", "f32/f64"), ("no SIMD", "SIMD"), ("SIMD instructions", "SIMD"),
    ("no reference types", "reference types"), ("no tail calls", "tail calls"),
    ("is not supported: a program may only import", "imports"), ("multiple memories", "multiple memories"),
    ("more memory than the machine has", BEYOND_MACHINE),
    ("memory64", "memory64"), ("later proposals", "later proposals"), ("typed references", "later proposals"),
    ("VM instructions; at most", "program size (MAX_INSTRUCTIONS)"), ("imported tables", "imports"),
]

STATE_CHANGING = ("store", "global.set", "memory.grow", "table.set", "table.grow", "table.fill", "table.copy",
                  "table.init", "memory.fill", "memory.copy", "memory.init", "data.drop", "elem.drop")


@dataclass
class Tally:
    passed: int = 0
    unsupported: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + sum(self.unsupported.values()) + len(self.failures)

    def add(self, other: Tally) -> None:
        self.passed += other.passed
        self.unsupported.update(other.unsupported)
        self.failures += other.failures


class Unsupported(Exception):
    """The assertion needs something the machine does not support; the message is the reason."""


class Failure(Exception):
    """A disagreement between the script and the VM."""


@dataclass
class _Instance:
    module: Module | None
    error: str | None = None
    stateful: bool = False
    history: list[Call] = field(default_factory=list)  # state-changing calls to replay
    changes_state: dict[str, bool] = field(default_factory=dict)  # export name -> may change state
    poisoned: str | None = None  # why the state may differ from the script's (see module doc)


def spec_tests_dir(repo_root: Path) -> Path:
    override = os.environ.get(SPEC_TESTS_ENV)
    return Path(override) if override else (repo_root / SPEC_TESTS_RELATIVE).resolve()


def refusal_reason(message: str) -> str | None:
    for phrase, reason in REFUSAL_REASONS:
        if phrase in message:
            return reason
    return None


Executor = Callable[[VMProgram], refvm.RefResult]


def reference_executor(program: VMProgram) -> refvm.RefResult:
    return refvm.run(program, max_steps=MAX_STEPS_PER_ASSERTION)


def run_script(path: Path, *, memory_limit: int = SPEC_MEMORY_LIMIT, executor: Executor = reference_executor) -> Tally:
    """Run one .wast script; ``executor`` runs each lowered program (the reference VM, or the transformer)."""
    return _Script(path, memory_limit, executor).run()


def run_suite(paths: list[Path], **options) -> dict[str, Tally]:
    return {path.name: run_script(path, **options) for path in paths}


def format_summary(tallies: dict[str, Tally]) -> str:
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    lines = [f"{'script':<22} {'total':>6} {'passed':>6} {'unsupp':>6} {'failed':>6}"]
    for name, tally in tallies.items():
        lines.append(f"{name:<22} {tally.total:>6} {tally.passed:>6} "
                     f"{sum(tally.unsupported.values()):>6} {len(tally.failures):>6}")
    lines.append(f"{'all':<22} {total.total:>6} {total.passed:>6} "
                 f"{sum(total.unsupported.values()):>6} {len(total.failures):>6}")
    lines.append("unsupported, by reason:")
    lines += [f"  {count:>6}  {reason}" for reason, count in total.unsupported.most_common()]
    lines += [f"FAILED {failure}" for failure in total.failures[:50]]
    return "\n".join(lines)


class _Script:
    def __init__(self, path: Path, memory_limit: int, executor: Executor):
        self.path = path
        self.execute = executor
        self.text = path.read_text()
        self.memory_limit = memory_limit
        self.last_grow_limited = False  # the newest program's memory.grow stops at the machine's memory
        self.tally = Tally()
        self.instances: dict[str, _Instance] = {}
        self.current: _Instance | None = None
        self.libraries = helper_libraries([PROGRAM_NAME.encode()])  # decoded once for the script's programs

    def run(self) -> Tally:
        for command in read_script(self.text):
            head = command.head()
            if head == "module":
                self._define(command)
            elif head == "invoke":
                self._standalone_action(command)
            elif head in ("register", "get"):
                continue  # no assertion; a later import of a registered module is refused anyway
            else:
                self._assertion(command)
        return self.tally

    # --- modules -----------------------------------------------------------------------

    def _define(self, command: SList) -> None:
        items = command.items[1:]
        name = items[0] if items and isinstance(items[0], str) and items[0].startswith("$") else None
        if "definition" in items[:2] or "instance" in items[:2]:
            return  # module definitions / instances (not instantiated here): no assertion
        try:
            instance = _Instance(decode_module(self._module_binary(command)))
            instance.stateful = _changes_state(instance.module)
        except FrontendError as error:
            instance = _Instance(None, error=str(error))
        self.current = instance
        if name:
            self.instances[name] = instance

    def _module_binary(self, command: SList) -> bytes:
        import wasmtime

        items = [item for item in command.items[1:] if not (isinstance(item, str) and item.startswith("$"))]
        try:
            if items and items[0] == "binary":
                return b"".join(item.value for item in items[1:])
            if items and items[0] == "quote":
                text = b" ".join(item.value for item in items[1:]).decode("utf-8", errors="replace")
                return bytes(wasmtime.wat2wasm(f"(module {text})"))
            return bytes(wasmtime.wat2wasm(self.text[command.start:command.end]))
        except wasmtime.WasmtimeError as error:
            raise FrontendError(f"WAT: {str(error).strip().splitlines()[0]}") from None

    # --- assertions ----------------------------------------------------------------------

    def _assertion(self, command: SList) -> None:
        where = f"{self.path.name}:{command.line}"
        try:
            self._check(command)
            self.tally.passed += 1
        except Unsupported as reason:
            self.tally.unsupported[str(reason)] += 1
        except Failure as failure:
            uncertain = self.current.poisoned if self.current is not None else None
            if uncertain:  # the state before it could not be reproduced: not the VM's fault
                self.tally.unsupported[uncertain] += 1
            else:
                self.tally.failures.append(f"{where}: {failure}")

    def _check(self, command: SList) -> None:
        head = command.head()
        if head == "assert_return":
            self._assert_return(command.items[1], command.items[2:])
        elif head in ("assert_trap", "assert_exhaustion") and command.items[1].head() in ("invoke", "get"):
            self._assert_trap(command.items[1], command.items[2].value.decode())
        elif head in ("assert_trap", "assert_uninstantiable"):
            self._assert_instantiation_trap(command.items[1], command.items[2].value.decode())
        elif head in ("assert_invalid", "assert_malformed"):
            self._assert_refused(command.items[1])
        elif head == "assert_unlinkable":
            raise Unsupported("imports (assert_unlinkable)")
        else:
            raise Unsupported(f"command {head}")

    def _assert_return(self, action: SList, expected: list) -> None:
        typed = [_value(item) for item in expected]
        result = self._run(action)
        if result.trap is not None:
            self._explain_trap(result)
            raise Failure(f"trapped with {result.trap.name}, expected {[value for _, value in typed]}")
        actual, start = [], 0
        for kind, _ in typed:  # each result is 4 bytes per word
            size = I32_BYTES * VALUE_WORDS[kind]
            actual.append(int.from_bytes(result.output[start:start + size], "little"))
            start += size
        if start != len(result.output):
            raise Failure(f"output {len(result.output)} bytes, expected {start}")
        if not all(_matches(kind, value, bits) for (kind, value), bits in zip(typed, actual)):
            if self._beyond_machine(result):
                raise Unsupported(BEYOND_MACHINE)
            shown = [hex(bits) if kind in FLOAT_FORMATS else _signed(bits, kind) for (kind, _), bits in zip(typed, actual)]
            wanted = [value if isinstance(value, str) else hex(value) if kind in FLOAT_FORMATS else _signed(value, kind)
                      for kind, value in typed]
            raise Failure(f"returned {shown}, expected {wanted}")

    def _assert_trap(self, action: SList, message: str) -> None:
        expected = _trap_reason(message)
        result = self._run(action, replay=False)
        if result.trap != expected:
            if result.trap is not None:
                self._explain_trap(result)
            raise Failure(f"ended with {result.trap and result.trap.name}, expected trap {expected.name}")

    def _explain_trap(self, result: refvm.RefResult) -> None:
        """A trap that only the machine's smaller memory explains is a limit, not a failure."""
        if self._beyond_machine(result):
            raise Unsupported(BEYOND_MACHINE)

    def _beyond_machine(self, result: refvm.RefResult) -> bool:
        """Whether the run had a memory.grow fail that wasm would have allowed (past the machine's memory):
        what follows may differ from wasm's without being wrong (on the safe side: such a run never counts as
        passed or failed, only as unsupported)."""
        return bool(result.failed_grows) and self.last_grow_limited

    def _assert_instantiation_trap(self, module_form: SList, message: str) -> None:
        expected = _trap_reason(message)
        try:
            module = decode_module(self._module_binary(module_form))
            program = lower(module, calls=[], memory_limit=self.memory_limit, name=PROGRAM_NAME,
                            libraries=self.libraries)
        except FrontendError as error:
            if "instantiation would trap" in str(error):
                return
            raise Unsupported(refusal_reason(str(error)) or f"refused: {error}") from None
        result = self.execute(program)
        if result.trap != expected:
            raise Failure(f"instantiation ended with {result.trap}, expected trap {expected.name}")

    def _assert_refused(self, module_form: SList) -> None:
        try:
            decode_module(self._module_binary(module_form))
        except FrontendError:
            return
        raise Failure("the front end accepted an invalid or malformed module")

    # --- running actions ------------------------------------------------------------------

    def _standalone_action(self, action: SList) -> None:
        """An invoke outside an assertion, run for its effects (replayed later); not counted."""
        try:
            self._run(action)
        except Unsupported:
            pass  # _run already marked the instance if the action could have changed its state
        except Failure as failure:
            self.tally.failures.append(f"{self.path.name}:{action.line}: (invoke) {failure}")

    @staticmethod
    def _may_change_state(instance: _Instance, name: str) -> bool:
        if not instance.stateful:
            return False
        if name not in instance.changes_state:
            instance.changes_state[name] = _export_may_change_state(instance.module, name)
        return instance.changes_state[name]

    def _instance(self, action: SList) -> _Instance | None:
        name = action.items[1] if isinstance(action.items[1], str) else None
        return self.instances.get(name) if name else self.current

    def _run(self, action: SList, replay: bool = True) -> refvm.RefResult:
        if action.head() != "invoke":
            raise Unsupported("get (exported globals)")
        instance = self._instance(action)
        items = [item for item in action.items[1:] if not isinstance(item, str)]
        name, args = items[0].value.decode(), [_argument(item) for item in items[1:]]
        if instance is None or instance.module is None:
            error = instance.error if instance else "no module"
            raise Unsupported(refusal_reason(error) or f"module not built: {error}")
        call = Call(name, tuple(args))
        try:
            program = lower(instance.module, calls=instance.history + [call], memory_limit=self.memory_limit,
                            name=PROGRAM_NAME, libraries=self.libraries)
        except FrontendError as error:
            reason = refusal_reason(str(error))
            if self._may_change_state(instance, name):
                instance.poisoned = f"after an unsupported state-changing action ({reason})"
            if reason is None:
                raise Failure(f"refused: {error}") from None
            raise Unsupported(reason) from None
        self.last_grow_limited = program.stats.get("grow_limited_by_machine", False)
        result = self.execute(program)
        if not result.halted:  # e.g. call_indirect.wast's fib-f64(20): 15 million steps of soft float
            raise Unsupported(STEP_BUDGET)
        if result.trap is TrapReason.UNSUPPORTED:  # reached an instruction the machine does not execute
            raise Unsupported("f32/f64")
        if self._beyond_machine(result) and self._may_change_state(instance, name):
            # wasm may have grown memory here, the machine did not: later results on this state are uncertain
            instance.poisoned = f"after an unsupported state-changing action ({BEYOND_MACHINE})"
        if replay and result.trap is None and self._may_change_state(instance, name):
            instance.history.append(Call(name, tuple(args), output=False))
        return result


def _changes_state(module: Module) -> bool:
    return any(_function_changes_state(module, function.index) for function in module.functions)


def _function_changes_state(module: Module, index: int) -> bool:
    """Whether the function's own body has a state-changing instruction (undecodable: assume so)."""
    try:
        names = {instruction.name for instruction in decode_body(module, module.defined_function(index))}
    except FrontendError:
        return True
    return any(name.endswith(STATE_CHANGING) or ".store" in name for name in names)


def _export_may_change_state(module: Module, name: str) -> bool:
    """Whether calling the export can change state: any reachable function (or the table) changes it."""
    kind, start = module.exports.get(name, ("", -1))
    if kind != "func":
        return False
    imported = len(module.imported_functions)
    seen, pending = set(), [start]
    while pending:
        index = pending.pop()
        if index in seen or index < imported:
            continue
        seen.add(index)
        if _function_changes_state(module, index):
            return True
        for instruction in decode_body(module, module.defined_function(index)):
            if instruction.name == "call":
                pending.append(instruction.args[0])
            elif instruction.name == "call_indirect":
                pending += [f for segment in module.elements for f in segment.functions if f is not None]
    return False


VALUE_WORDS = {"i32": 1, "i64": 2, "f32": 1, "f64": 2}  # 32-bit words per value (frontend/words.py)
FLOAT_FORMATS = {"f32": (8, 23), "f64": (11, 52)}  # exponent and fraction bits
NAN_PATTERNS = ("nan:canonical", "nan:arithmetic")  # the spec's NaN results where it allows a choice


def _value(item) -> tuple[str, int | str]:
    """A const argument or result: (its type, its bits as an unsigned number, or a NaN pattern)."""
    if not isinstance(item, SList) or not item.items:
        raise Unsupported("unexpected value form")
    head = item.head()
    kind = head.split(".")[0] if head else "?"
    if kind not in VALUE_WORDS or head != f"{kind}.const":
        reason = {"v128": "SIMD", "either": "either (alternative results)"}.get(kind, "reference types")
        raise Unsupported(reason)
    text = item.items[1]
    if kind in FLOAT_FORMATS:
        return kind, text if text in NAN_PATTERNS else _float_bits(kind, text)
    return kind, _parse_int(text) % (1 << (32 * VALUE_WORDS[kind]))


def _argument(item) -> int:
    kind, value = _value(item)
    if isinstance(value, str):
        raise Failure(f"{value} as an argument")
    return value


def _float_bits(kind: str, text: str) -> int:
    """A float literal's bits, as wasmtime's WAT parser reads it (decimal and hex literals, inf, nan:0x...)."""
    import wasmtime

    binary = bytes(wasmtime.wat2wasm(f"(module (func (result {kind}) ({kind}.const {text})))"))
    size = I32_BYTES * VALUE_WORDS[kind]
    return int.from_bytes(binary[-1 - size:-1], "little")  # the body ends: const opcode, the bits, end


def _matches(kind: str, expected: int | str, bits: int) -> bool:
    """A result against an expected value: exact bits, or a NaN of the pattern (its sign free)."""
    if isinstance(expected, int):
        return bits == expected
    exponent_bits, fraction_bits = FLOAT_FORMATS[kind]
    quiet_nan = ((1 << exponent_bits) - 1) << fraction_bits | 1 << (fraction_bits - 1)
    magnitude = bits & ((1 << (exponent_bits + fraction_bits)) - 1)
    if expected == "nan:canonical":
        return magnitude == quiet_nan
    return magnitude & quiet_nan == quiet_nan  # nan:arithmetic: any NaN with the quiet bit set


def _parse_int(text: str) -> int:
    text = text.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    return sign * (int(digits, 16) if digits.lower().startswith("0x") else int(digits, 10))


def _signed(value: int, kind: str = "i32") -> int:
    bits = 32 * VALUE_WORDS[kind]
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _trap_reason(message: str) -> TrapReason:
    for prefix, reason in TRAP_MESSAGES.items():
        if message.startswith(prefix):
            return reason
    raise Unsupported(f"trap message '{message}'")
