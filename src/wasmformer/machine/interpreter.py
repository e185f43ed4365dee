"""The WebAssembly VM interpreter written in the graph DSL: the universal machine.

Compiled once, it runs any VM program its prompt holds (docs/token-language.md
is the language it speaks; docs/machine.md walks through this file). At every
token the graph recomputes the machine state from the trace and names the
next token:

1. bookkeeping: counts of commit tokens give the stack depth, call depth,
   input cursor and step count; the newest transfer commit gives the pc;
2. fetch: the instruction slot at the pc (opcode and immediate), decoded
   into one 0/1 flag per op;
3. operands: the newest stack records keyed by depth, the newest variable
   record keyed by (call depth, index) or global index, the newest memory
   record keyed by address;
4. the byte to emit at this phase of the step (a copy, an add/sub byte with
   its carry, a comparison result, a loaded byte...), and the next token.

Nothing here is WebAssembly-specific beyond the op table: the model that comes
out is an ordinary transformer.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer.frontend.program import Op, TrapReason, VMProgram
from wasmformer.graph.expr import UNIQUE, Expr, ExprLike
from wasmformer.graph.graph import Graph
from wasmformer.graph.patterns import switch
from wasmformer.machine import tokens as T
from wasmformer.machine.baked import SPECIALISED_INPUT_START, BakedProgram
from wasmformer.machine.prompt import MACHINE_OPS

# The exactness horizon. Every latest-lookup key lies in [-1, KEY_LIMIT = 2**14]
# and is centred (KEY_CENTER subtracted from key and query alike, which leaves
# (q - k)^2 unchanged), so |q|, |k| <= 2**13 + 1 and the score
# B*(2|q||k| + k^2) + T stays below 2**53 with B = T = 2**24 (16.7M tokens).
# The count heads allow up to 2.37e7 (graph/precision.py).
MAX_TOKENS = 1 << 24
KEY_CENTER = T.KEY_LIMIT // 2
VALUE_BYTES = 4
BYTE_RANGE = 256
WORD = 1 << 32
SIGN = 1 << 31

# Op classes (docs/token-language.md "Tokens of each step").
PUSH_OPS = (Op.CONST, Op.LOCAL_GET, Op.GLOBAL_GET, Op.MEMORY_SIZE)  # commit c.push
BITWISE_OPS = (Op.AND, Op.OR, Op.XOR)
LEFT_SHIFTS = (Op.SHL, Op.ROTL)  # result byte k comes from bytes k - q and k - q - 1 of the value
RIGHT_SHIFTS = (Op.SHR_U, Op.SHR_S, Op.ROTR)  # ... from bytes k + q and k + q + 1
ROTATIONS = (Op.ROTL, Op.ROTR)  # byte indices wrap around
SHIFTS = (*LEFT_SHIFTS, *RIGHT_SHIFTS)
BINARY_OPS = (Op.ADD, Op.SUB, Op.EQ, Op.NE, Op.LT_S, Op.LT_U, Op.GT_S, Op.GT_U, Op.LE_S, Op.LE_U, Op.GE_S, Op.GE_U,
              *BITWISE_OPS, *SHIFTS)
LOAD_WIDTH = {Op.LOAD8_S: 1, Op.LOAD8_U: 1, Op.LOAD16_S: 2, Op.LOAD16_U: 2, Op.LOAD: 4}
EXTEND_WIDTH = {Op.EXTEND8_S: 1, Op.EXTEND16_S: 2}  # sign-extend the low 8 or 16 bits
BITS = 8
SIGNED_LOADS = (Op.LOAD8_S, Op.LOAD16_S)
STORE_WIDTH = {Op.STORE8: 1, Op.STORE16: 2, Op.STORE: 4}
KEEP_OPS = (Op.EQZ, *LOAD_WIDTH, *EXTEND_WIDTH, Op.MEMORY_GROW)  # value ops with commit c.keep
VALUE_OPS = (*PUSH_OPS, Op.GETCHAR, *KEEP_OPS, *BINARY_OPS, Op.SELECT)  # write a stack record
VARIABLE_WRITES = (Op.LOCAL_SET, Op.LOCAL_TEE, Op.GLOBAL_SET)
CONDITIONAL_JUMPS = (Op.JUMP_IF_ZERO, Op.JUMP_IF_NONZERO)
COMPARISONS = (Op.EQZ, Op.EQ, Op.NE, Op.LT_S, Op.LT_U, Op.GT_S, Op.GT_U, Op.LE_S, Op.LE_U, Op.GE_S, Op.GE_U)
STACK_EFFECT = {**{op: 1 for op in PUSH_OPS}, Op.GETCHAR: 1, **{op: 0 for op in KEEP_OPS},
                **{op: -1 for op in BINARY_OPS}, Op.SELECT: -2}
COMMIT_OF = {**{op: "c.push" for op in PUSH_OPS}, Op.GETCHAR: "c.getc", **{op: "c.keep" for op in KEEP_OPS},
             **{op: "c.pop" for op in BINARY_OPS}, Op.SELECT: "c.pop2", Op.LOCAL_SET: "c.pop",
             Op.LOCAL_TEE: "c.keep", Op.GLOBAL_SET: "c.pop", **{op: "c.pop2" for op in STORE_WIDTH},
             Op.DROP: "c.pop", Op.PUTCHAR: "c.pop", Op.JUMP: "c.jump", **{op: "c.pop" for op in CONDITIONAL_JUMPS},
             Op.CALL: "c.call", Op.RETURN: "c.return"}
OPCODE = {op: index + 1 for index, op in enumerate(sorted(MACHINE_OPS, key=lambda op: op.value))}  # 0: not an op


def build_interpreter(max_tokens: int = MAX_TOKENS, program: VMProgram | None = None) -> Graph:
    """The machine as a graph (compile it with ``compiler.build_model``).

    Without ``program``: the universal machine, reading the program from its
    prompt. With one: that program baked into FFN tables (machine/specialize.py);
    the prompt then holds only the input.
    """
    return _Builder(max_tokens, program).g


@dataclass
class _Record:
    """What a record lookup returns: the record's position and a second value."""
    position: Expr
    value: Expr


class _Builder:
    def __init__(self, max_tokens: int, program: VMProgram | None = None):
        vocab = T.vocabulary()
        self.ids = {token: index for index, token in enumerate(vocab)}
        self.program = program
        self.baked = None if program is None else BakedProgram(program)
        name = "wasm-machine" if program is None else f"wasm-machine.{program.name}"
        self.g = Graph(vocab, halt_token=T.HALT, output_bytes=T.OUTPUT_BYTES, max_tokens=max_tokens, name=name)
        self._token_tables()
        self._previous_tokens()
        self._bookkeeping()
        self._fetch()
        self._operands()
        self._records()
        self._emit()

    # -- small helpers -------------------------------------------------------------------
    def clamp(self, name: str, x: ExprLike, lo: int, hi: int) -> Expr:
        """x limited to [lo, hi]; exact for integers, and a declared bound that lookups can rely on."""
        x = Expr.of(x)
        return self.g.neurons(name, [(1, self.g.one, x - lo), (-1, self.g.one, x - hi)], bounds=(0, hi - lo)) + lo

    def flag_and(self, name: str, *flags: ExprLike) -> Expr:
        """1 when every 0/1 flag is 1: relu(sum - (n - 1)), one unit."""
        total = sum((Expr.of(f) for f in flags), Expr())
        return self.g.neurons(name, [(1, self.g.one, total - (len(flags) - 1))], bounds=(0, 1))

    def either(self, name: str, *flags: ExprLike) -> Expr:
        """1 when one of several mutually exclusive 0/1 flags is 1 (one unit; the evaluator checks exclusivity)."""
        total = sum((Expr.of(f) for f in flags), Expr())
        return self.g.neurons(name, [(1, self.g.one, total)], bounds=(0, 1))

    def record_lookup(self, name: str, query: ExprLike, key: ExprLike, values: list[ExprLike],
                      clear: ExprLike) -> list[Expr]:
        """The newest record whose key equals the query (keys centred to keep scores exact)."""
        return self.g.lookup(name, Expr.of(query) - KEY_CENTER, Expr.of(key) - KEY_CENTER, values, clear=clear)

    def table(self, name: str, x: ExprLike, values: list[int]) -> Expr:
        """values[x] for an integer x in [0, len(values)) (values[0] below, values[-1] above): one unit per
        change of slope of the piecewise-linear interpolation, f(x) = v0 + sum_p s_p * relu(x - p).

        Exact while every term stays far below 2**53: tables hold bytes and opcodes (|s_p| < 2**10) over
        x < 2**16, so no partial sum exceeds 2**42.
        """
        x = Expr.of(x)
        terms, slope = [], 0
        for point in range(len(values) - 1):
            new_slope = values[point + 1] - values[point]
            if new_slope != slope:
                terms.append((new_slope - slope, self.g.one, x - point))
                slope = new_slope
        if slope:
            terms.append((-slope, self.g.one, x - (len(values) - 1)))  # flat beyond the last value
        if not terms:
            return Expr.of(values[0])
        return self.g.neurons(name, terms, bounds=(min(values) - values[0], max(values) - values[0])) + values[0]

    def cleared(self, name: str, holds: ExprLike) -> Expr:
        """The clear flag of a lookup as a feature of its own (1 - holds): the compiler needs that when the
        clear penalty exceeds 2**53 (docs/machine.md, the precision budget)."""
        return self.g.neurons(name, [(1, self.g.one, 1 - Expr.of(holds))], bounds=(0, 1))

    def gate(self, name: str, flag: ExprLike, value: ExprLike) -> Expr:
        """flag ? value : 0 for a 0/1 flag (one unit when value >= 0, else two)."""
        return self.g.product(name, value, flag) if Expr.of(value).bounds()[0] < 0 else self.g.product(name, flag, value)

    def op_flag(self, *ops: Op) -> Expr:
        return sum((self.is_op[op] for op in ops), Expr())

    def by_op(self, table: dict[Op, int]) -> Expr:
        """A per-op constant as a linear expression of the op flags (0 for ops not in the table)."""
        return sum((value * self.is_op[op] for op, value in table.items()), Expr())

    # -- 0. what each token is -----------------------------------------------------------------
    def _token_tables(self) -> None:
        g, vocab = self.g, self.g.vocab
        family = {token: token.split(".")[0] for token in vocab if "." in token}
        byte_tokens = {token for token in vocab if family.get(token) in T.BYTE_FAMILIES}
        self.byte = g.token_table("byte", {token: int(token.split(".")[1], 16) for token in byte_tokens})
        self.is_carry = g.token_table("is_carry", {token: 1 for token in byte_tokens if family[token] == "vc"})
        self.is_value_byte = g.token_table("is_value_byte", {t: 1 for t in byte_tokens if family[t] in ("v", "vc")})
        self.is_prompt_byte = g.token_table("is_prompt_byte", {t: 1 for t in byte_tokens if family[t] == "i"})
        self.bit = [g.token_table(f"bit{i}", {t: 1 for t in byte_tokens if int(t.split(".")[1], 16) >> i & 1})
                    for i in range(BITS)]
        self.is_stored_byte = g.token_table("is_stored_byte", {t: 1 for t in byte_tokens if family[t] == "m"})
        self.is_target_low = g.token_table("is_target_low", {t: 1 for t in byte_tokens if family[t] == "pl"})
        self.is_start = g.token_table("is_start", {T.START: 1})
        self.is_run = g.token_table("is_run", {T.RUN: 1})
        self.is_commit = g.token_table("is_commit", {token: 1 for token in (*T.COMMITS, T.RUN)})
        # <s> is a sentinel candidate of every cleared lookup, so each always has an answer
        commit_or_start = {*T.COMMITS, T.RUN, T.START}
        transfer_or_start = {*T.TRANSFER_COMMITS, T.START}
        self.not_commit = g.token_table("not_commit", {token: 1 for token in vocab if token not in commit_or_start})
        self.not_transfer = g.token_table("not_transfer", {t: 1 for t in vocab if t not in transfer_or_start})
        self.is_trap_token = g.token_table("is_trap_token", {token: 1 for token in T.TRAPS})
        self.is_global_marker = g.token_table("is_global_marker", {T.GLOBAL: 1})
        self.is_data_marker = g.token_table("is_data_marker", {T.DATA_RECORD: 1})
        self.opcode_here = g.token_table("opcode", {T.opcode_token(op): code for op, code in OPCODE.items()})
        self.pushes = g.token_table("pushes", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == 1})
        self.pops_one = g.token_table("pops_one", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == -1})
        self.pops_two = g.token_table("pops_two", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == -2})
        self.is_call_commit = g.token_table("is_call_commit", {"c.call": 1})
        self.is_return_commit = g.token_table("is_return_commit", {"c.return": 1})
        self.is_getc_commit = g.token_table("is_getc_commit", {"c.getc": 1})

    def _previous_tokens(self) -> None:
        """The bytes of the three tokens before this one, and the markers 3 and 4 back."""
        g = self.g
        (self.byte_back1,) = g.lookup("back1", g.t - 1, g.t, [self.byte], tie=UNIQUE)
        (self.byte_back2,) = g.lookup("back2", g.t - 2, g.t, [self.byte], tie=UNIQUE)
        self.byte_back3, data_marker_back3 = g.lookup("back3", g.t - 3, g.t, [self.byte, self.is_data_marker],
                                                      tie=UNIQUE)
        opcode_back4, global_marker_back4 = g.lookup("back4", g.t - 4, g.t, [self.opcode_here, self.is_global_marker],
                                                     tie=UNIQUE)
        # The 32-bit value of the four bytes ending here (a slot's value at its last byte).
        self.word_here = g.persist("word_here", self.byte_back3 + 256 * self.byte_back2 + 65536 * self.byte_back1
                                   + (1 << 24) * self.byte)
        self.slot_opcode = opcode_back4
        self.ends_global_slot = self.flag_and("ends_global_slot", global_marker_back4, self.is_prompt_byte)
        self.ends_data_record = self.flag_and("ends_data_record", data_marker_back3, self.is_prompt_byte)
        self.data_address = self.byte_back2 + 256 * self.byte_back1  # low byte 2 back, high byte 1 back
        self.target_here = 256 * self.byte_back2 + self.byte_back1  # at a transfer commit: ph, pl before it

    # -- 1. bookkeeping -----------------------------------------------------------------------
    def _bookkeeping(self) -> None:
        g = self.g
        commits, pushes = g.count_before("commits", [self.is_commit, self.pushes])
        pops_one, pops_two = g.count_before("pops", [self.pops_one, self.pops_two])
        calls, returns = g.count_before("calls", [self.is_call_commit, self.is_return_commit])
        (getcs,) = g.count_before("getcs", [self.is_getc_commit])
        self.commits_through = commits + self.is_commit
        sp = pushes + self.pushes - pops_one - self.pops_one - 2 * (pops_two + self.pops_two)
        self.sp = self.clamp("sp", sp, -2, T.KEY_LIMIT)
        depth = calls + self.is_call_commit - returns - self.is_return_commit
        self.depth = self.clamp("call_depth", depth, 0, T.MAX_CALL_DEPTH)
        self.cursor = getcs + self.is_getc_commit  # getchar steps committed so far

        (commit_at,) = g.lookup("newest_commit", 1, 1, [g.t], clear=self.not_commit)
        self.phase = g.persist("phase", g.t - commit_at)  # 0 at a commit: the next token starts a step
        target, steps_at = g.lookup("newest_transfer", 1, 1, [self.target_here, self.commits_through],
                                    clear=self.not_transfer)
        self.pc = self.clamp("pc", target + self.commits_through - steps_at, 0, T.MAX_PC)

        def header(marker: str, hi: int) -> Expr:
            (value,) = g.lookup(f"header.{marker.strip('<>')}", T.header_value_position(marker), g.t,
                                [self.word_here], tie=UNIQUE)
            return self.clamp(f"{marker.strip('<>')}_param", value, 0, hi)

        if self.baked is not None:  # the program's parameters are constants of the weights
            self.memory_limit, self.stride = Expr.of(self.baked.memory_limit), Expr.of(self.baked.stride)
            self.call_limit, self.input_start = Expr.of(self.baked.call_limit), Expr.of(SPECIALISED_INPUT_START)
            return
        self.memory_limit = header(T.MEMORY, T.MAX_MEMORY)
        self.stride = header(T.FRAME, T.KEY_LIMIT)
        self.call_limit = header(T.CALLS, T.MAX_CALL_DEPTH)
        self.code_base = header(T.CODE, MAX_TOKENS)
        self.input_start = header(T.INPUT, MAX_TOKENS)

    # -- 2. fetch and decode ---------------------------------------------------------------------
    def _fetch(self) -> None:
        g = self.g
        if self.baked is not None:  # instruction fetch through neurons: tables indexed by pc
            opcode = self.table("opcode_at_pc", self.pc, self.baked.opcodes)
            self.immediate_bytes = [self.table(f"immediate.byte{k}", self.pc, self.baked.immediate_bytes[k])
                                    for k in range(VALUE_BYTES)]
            self.immediate = sum((self.immediate_bytes[k] * 256**k for k in range(VALUE_BYTES)), Expr())
        else:
            self.slot_position = self.code_base + T.SLOT * self.pc  # the op token of instruction pc
            self.immediate, opcode = g.lookup("fetch", self.slot_position + VALUE_BYTES, g.t,
                                              [self.word_here, self.slot_opcode], tie=UNIQUE)
        self.is_op = {op: g.equals(f"is.{op.value}", opcode, code) for op, code in OPCODE.items()}
        self.small_immediate = self.clamp("small_immediate", self.immediate, 0, T.KEY_LIMIT)

    # -- 3. operands -------------------------------------------------------------------------------
    def _stack_slot(self, name: str, depth: ExprLike) -> _Record:
        position, value = self.record_lookup(name, depth, self.stack_key, [self.g.t, self.word_here],
                                        clear=self.stack_cleared)
        return _Record(position, value)

    def _operands(self) -> None:
        g = self.g
        self.stack_key = g.placeholder("stack_key", -1, T.KEY_LIMIT)
        self.holds_stack_record = g.placeholder("holds_stack_record", 0, 1)
        self.stack_cleared = self.cleared("stack.cleared", self.holds_stack_record)  # shared by three heads
        self.top = self._stack_slot("top", self.sp)
        self.second = self._stack_slot("second", self.sp - 1)
        self.third = self._stack_slot("third", self.sp - 2)

        # variables: locals keyed by (call depth, index), globals by their prompt slot
        frame_base = g.product("frame_base", self.depth, self.stride)
        self.local_key = T.LOCAL_KEY_BASE + frame_base + self.small_immediate
        self.global_key = T.global_key(0) + T.SLOT * self.small_immediate
        is_local_get, is_global_get = self.is_op[Op.LOCAL_GET], self.is_op[Op.GLOBAL_GET]
        query = self.clamp("variable_query", self.gate("local_query", is_local_get, self.local_key)
                           + self.gate("global_query", is_global_get, self.global_key) - 1 + is_local_get
                           + is_global_get, -1, T.KEY_LIMIT)
        self.variable_key = g.placeholder("variable_key", -1, T.KEY_LIMIT)
        self.holds_variable = g.placeholder("holds_variable", 0, 1)
        variable_at, found_key = self.record_lookup("variable", query, self.variable_key, [g.t, self.variable_key],
                                          clear=self.cleared("variable.cleared", self.holds_variable))

        # the current frame began at the newest call record for this depth
        self.call_key = g.placeholder("call_key", -1, T.MAX_CALL_DEPTH + 1)
        self.holds_call = g.placeholder("holds_call", 0, 1)
        frame_cleared = self.cleared("frame.cleared", self.holds_call)
        if self.baked is not None:  # the call record carries its return pc's bytes (immediate bytes 3, 2)
            (self.frame_start,) = g.lookup("frame", self.depth, self.call_key, [g.t], clear=frame_cleared)
            self.return_bytes = g.lookup("return_pc", self.depth, self.call_key, self.immediate_bytes[:1:-1],
                                         clear=frame_cleared)
        else:
            return_slot_here = self.slot_position + 3  # at a call record: its immediate's bytes 2, 3 (return pc)
            self.frame_start, self.return_slot = g.lookup("frame", self.depth, self.call_key,
                                                          [g.t, return_slot_here], clear=frame_cleared)
        found = g.equals("variable_found", found_key - query, 0)
        fresh = g.step("variable_fresh", variable_at - self.frame_start)  # written in this frame
        readable = self.either("variable_readable", self.flag_and("local_readable", found, fresh, is_local_get),
                               self.flag_and("global_readable", found, is_global_get))
        if self.baked is not None:  # a global never written reads its baked initial value
            self.global_unwritten = self.flag_and("global_unwritten", 1 - found, is_global_get)
        self.variable_first_byte = g.select("variable_first_byte", readable, variable_at - 3, T.ZERO_FIRST_BYTE)

        # memory: the effective address of a load or store
        is_store = self.either("is_store", *(self.is_op[op] for op in STORE_WIDTH))
        address = g.select("address", is_store, self.second.value, self.top.value)
        self.effective_address = address + self.immediate
        memory_width = self.by_op({**LOAD_WIDTH, **STORE_WIDTH})
        memory_op = self.op_flag(*LOAD_WIDTH, *STORE_WIDTH)
        beyond = g.step("beyond_memory", self.effective_address + memory_width - self.memory_limit - 1)
        self.out_of_bounds = self.flag_and("out_of_bounds", beyond, memory_op)
        # loads and sign extensions read byte min(phase, width - 1): above the width, the top byte gives the sign
        self.narrow_width = self.by_op({**LOAD_WIDTH, **EXTEND_WIDTH})
        self.narrow_index = self.phase - g.relu("past_width", self.phase - self.narrow_width + 1)
        self.memory_query = self.clamp("memory_query", self.effective_address + self.narrow_index, -1,
                                       T.MAX_MEMORY)
        self.memory_key = g.placeholder("memory_key", -1, T.MAX_MEMORY)
        self.holds_memory = g.placeholder("holds_memory", 0, 1)
        stored, stored_key = self.record_lookup("memory", self.memory_query, self.memory_key,
                                                [self.byte, self.memory_key],
                                                clear=self.cleared("memory.cleared", self.holds_memory))
        memory_found = g.equals("memory_found", stored_key - self.memory_query, 0)
        if self.baked is None:
            self.loaded_byte = g.product("loaded_byte", stored, memory_found)
        else:  # never stored: the initial memory, baked
            initial = self.table("initial_memory", self.memory_query, self.baked.memory)
            self.loaded_byte = g.select("loaded_byte", memory_found, stored, initial)

    # -- records this token writes ------------------------------------------------------------------
    def _records(self) -> None:
        g = self.g
        at_last_byte = g.equals("at_last_byte", self.phase, VALUE_BYTES)
        value_record = self.flag_and("value_record", self.is_value_byte, at_last_byte, self.op_flag(*VALUE_OPS))
        stack_key = self.sp + self.by_op(STACK_EFFECT)
        key_if_record = self.gate("stack_key_if_record", value_record, stack_key + 1) - 1
        g.define(self.stack_key, self.clamp("stack_key_here", key_if_record, -1, T.KEY_LIMIT))
        g.define(self.holds_stack_record, self.either("holds_stack_record_here", value_record, self.is_start))

        local_write = self.flag_and("local_write", self.is_value_byte, at_last_byte,
                                    self.op_flag(Op.LOCAL_SET, Op.LOCAL_TEE))
        global_write = self.flag_and("global_write", self.is_value_byte, at_last_byte, self.is_op[Op.GLOBAL_SET])
        variable_key = (self.gate("local_key_if_write", local_write, self.local_key + 1)
                        + self.gate("global_key_if_write", global_write, self.global_key + 1)
                        + self.gate("global_slot_key", self.ends_global_slot, g.t + 1) - 1)
        g.define(self.variable_key, self.clamp("variable_key_here", variable_key, -1, T.KEY_LIMIT))
        g.define(self.holds_variable, self.either("holds_variable_here", local_write, global_write,
                                                  self.ends_global_slot, self.is_start))

        call_record = self.flag_and("call_record", self.is_target_low, self.is_op[Op.CALL])
        g.define(self.call_key, self.clamp("call_key_here", self.gate("call_depth_if_record", call_record,
                                                                      self.depth + 2) - 1 + self.is_run,
                                           -1, T.MAX_CALL_DEPTH + 1))
        g.define(self.holds_call, self.either("holds_call_here", call_record, self.is_run, self.is_start))

        stored_address = self.effective_address + self.phase - 1  # the m token at phase p holds byte p - 1
        memory_key = (self.gate("stored_key", self.is_stored_byte, stored_address + 1)
                      + self.gate("data_key", self.ends_data_record, self.data_address + 1) - 1)
        g.define(self.memory_key, self.clamp("memory_key_here", memory_key, -1, T.MAX_MEMORY))
        g.define(self.holds_memory, self.either("holds_memory_here", self.is_stored_byte, self.ends_data_record,
                                                self.is_start))

    # -- 4. the next token ------------------------------------------------------------------------------
    def _emit(self) -> None:
        g, phase = self.g, self.phase
        top, second = self.top.value, self.second.value
        first_phase = g.equals("first_phase", phase, 0)

        # conditions
        top_is_zero = g.equals("top_is_zero", top, 0)
        taken = (self.gate("taken_if_zero", self.is_op[Op.JUMP_IF_ZERO], top_is_zero)
                 + self.gate("taken_if_nonzero", self.is_op[Op.JUMP_IF_NONZERO], 1 - top_is_zero))
        transfer = self.op_flag(Op.JUMP, Op.CALL, Op.RETURN) + taken
        self._taken = taken

        # bytes come from a position ("source") plus the phase
        top_bytes, second_bytes = self.top.position - 3, self.second.position - 3
        third_bytes = self.third.position - 3
        chosen_bytes = g.select("select_bytes", 1 - top_is_zero, third_bytes, second_bytes)
        grows = g.equals("grow_by_zero", top, 0)
        copies_immediate = self.op_flag(Op.CONST, Op.MEMORY_SIZE) + self.gate("grow_ok", self.is_op[Op.MEMORY_GROW],
                                                                               grows)
        input_byte_at = self.input_start + self.cursor
        from_program = self._program_source(copies_immediate, phase) if self.baked is None else Expr()
        source = (from_program
                  + self.gate("src.variable", self.op_flag(Op.LOCAL_GET, Op.GLOBAL_GET),
                              self.variable_first_byte + phase)
                  + self.gate("src.select", self.is_op[Op.SELECT], chosen_bytes + phase)
                  + self.gate("src.second", self.op_flag(Op.ADD, Op.SUB), second_bytes + phase)
                  + self.gate("src.top", self.op_flag(*VARIABLE_WRITES, *STORE_WIDTH, Op.PUTCHAR), top_bytes + phase)
                  + self.gate("src.input", self.is_op[Op.GETCHAR], input_byte_at)
                  + self.gate("src.extend", self.op_flag(*EXTEND_WIDTH), top_bytes + self.narrow_index))
        source = self.clamp("source_position", source, 0, MAX_TOKENS)
        source_byte, source_is_input = g.lookup("source", source, g.t, [self.byte, self.is_prompt_byte], tie=UNIQUE)
        # the top's byte at this phase; for shifts its byte 0, which holds the shift count
        is_shift = self.either("is_shift", *(self.is_op[op] for op in SHIFTS))
        operand_at = top_bytes + phase - g.product("shift_count_byte", phase, is_shift)
        (operand_byte,) = g.lookup("operand", operand_at, g.t, [self.byte], tie=UNIQUE)

        # add / sub, one byte at a time with the carry mark of the previous byte token
        carry_in = self.is_carry
        byte_sum = source_byte + operand_byte + carry_in
        sum_carries = g.step("sum_carries", byte_sum - BYTE_RANGE)
        byte_difference = source_byte - operand_byte - carry_in
        difference_borrows = g.step("difference_borrows", -byte_difference - 1)
        is_add, is_sub = self.is_op[Op.ADD], self.is_op[Op.SUB]
        carry_out = self.gate("carry_out.add", is_add, sum_carries) + self.gate("carry_out.sub", is_sub,
                                                                                 difference_borrows)

        # comparisons: 0/1 in byte 0
        comparison = self._comparisons(top, second, top_is_zero)
        # loads and extensions: the byte, or above the width the sign fill
        narrow = (self.gate("narrow.load", self.op_flag(*LOAD_WIDTH), self.loaded_byte)
                  + self.gate("narrow.extend", self.op_flag(*EXTEND_WIDTH), source_byte))
        signed_narrow = self.op_flag(*SIGNED_LOADS, *EXTEND_WIDTH)
        sign_fill = self.gate("sign_fill", signed_narrow, g.step("narrow_negative", narrow - 128))
        past_width = g.step("narrow_past_width", phase - self.narrow_width)
        narrow_byte = g.select("narrow_byte", past_width, 255 * sign_fill, narrow)
        bits_byte = self._bits_and_shifts(second_bytes, top_bytes, operand_byte)
        # getchar: the input byte, or -1 at the end of the input; memory.grow by nonzero: -1
        at_end = self.flag_and("input_ended", 1 - source_is_input, self.is_op[Op.GETCHAR])
        getchar_byte = self.gate("getchar_byte", self.flag_and("getchar_first", first_phase,
                                                               self.is_op[Op.GETCHAR]), source_byte)
        all_ones = at_end + self.gate("grow_fails", self.is_op[Op.MEMORY_GROW], 1 - grows)

        copies = (copies_immediate + self.op_flag(Op.LOCAL_GET, Op.GLOBAL_GET, Op.SELECT, *VARIABLE_WRITES,
                                                   *STORE_WIDTH, Op.PUTCHAR, Op.JUMP, Op.CALL, Op.RETURN)
                  + taken)
        out_byte = (self.gate("out.copy", copies, source_byte)
                    + self.gate("out.add", is_add, byte_sum - BYTE_RANGE * sum_carries)
                    + self.gate("out.sub", is_sub, byte_difference + BYTE_RANGE * difference_borrows)
                    + self.gate("out.compare", first_phase, comparison)
                    + self.gate("out.narrow", self.op_flag(*LOAD_WIDTH, *EXTEND_WIDTH), narrow_byte)
                    + bits_byte
                    + self.gate("out.getchar", 1 - at_end, getchar_byte)
                    + 255 * all_ones
                    + (self._baked_bytes(copies_immediate, phase) if self.baked is not None else 0))
        out_byte = g.persist("out_byte", out_byte)
        self._next_token(out_byte, carry_out, transfer, taken, first_phase)

    def _program_source(self, copies_immediate: Expr, phase: Expr) -> Expr:
        """Universal machine: positions in the prompt's code of the immediate, target and return bytes."""
        slot_bytes = self.slot_position + 1
        return (self.gate("src.immediate", copies_immediate, slot_bytes + phase)
                + self.gate("src.target", self.op_flag(Op.JUMP, Op.CALL, *CONDITIONAL_JUMPS), slot_bytes + 1 - phase)
                + self.gate("src.return", self.is_op[Op.RETURN], self.return_slot + 1 - phase))

    def _baked_bytes(self, copies_immediate: Expr, phase: Expr) -> Expr:
        """Specialised machine: the same bytes from the instruction tables, and a global's initial value."""
        g, immediate = self.g, self.immediate_bytes
        immediate_here = switch(g, "baked.immediate", phase, dict(enumerate(immediate)))
        target_here = switch(g, "baked.target", phase, {0: immediate[1], 1: immediate[0]})
        return_here = switch(g, "baked.return", phase, {0: self.return_bytes[0], 1: self.return_bytes[1]})
        initial = [self.table(f"initial_global.byte{k}", self.small_immediate, self.baked.global_bytes[k])
                   for k in range(VALUE_BYTES)]
        global_here = switch(g, "baked.global", phase, dict(enumerate(initial)))
        return (self.gate("out.immediate", copies_immediate, immediate_here)
                + self.gate("out.target", self.op_flag(Op.JUMP, Op.CALL) + self._taken, target_here)
                + self.gate("out.return", self.is_op[Op.RETURN], return_here)
                + self.gate("out.initial_global", self.global_unwritten, global_here))

    def _bits_and_shifts(self, second_bytes: Expr, top_bytes: Expr, count_byte: Expr) -> Expr:
        """Byte ``phase`` of and/or/xor (second OP top) and of the shifts and rotations of second by top.

        Both read the bits of two bytes: for and/or/xor byte k of each operand;
        for a shift by c = 8q + r, the 16-bit window of the shifted value's bytes
        whose bits land in result byte k, which is then shifted right by s bits
        (s = 8 - r for left shifts, r for right shifts). Bytes outside the value
        read as zero (or, for shr_s of a negative value, as 0xff); rotations wrap.
        """
        g, phase = self.g, self.phase
        eighths = sum((g.step(f"count_eighths{m}", count_byte - 32 * m) for m in range(1, 8)), Expr())
        count = count_byte - 32 * eighths  # the shift count mod 32
        whole_bytes = sum((g.step(f"count_bytes{m}", count - 8 * m) for m in range(1, 4)), Expr())
        rest_bits = count - 8 * whole_bytes
        left, right = self.op_flag(*LEFT_SHIFTS), self.op_flag(*RIGHT_SHIFTS)
        low_index = phase + g.product("right_bytes", whole_bytes, right) - g.product("left_bytes", whole_bytes + 1,
                                                                                        left)
        negative = g.step("value_negative", self.second.value - SIGN)
        fill_first = T.ZERO_FIRST_BYTE + (T.ONES_FIRST_BYTE - T.ZERO_FIRST_BYTE) * self.flag_and(
            "fills_ones", negative, self.is_op[Op.SHR_S])
        rotates = self.either("rotates", *(self.is_op[op] for op in ROTATIONS))
        bitwise = self.either("is_bitwise", *(self.is_op[op] for op in BITWISE_OPS))

        def window_byte(name: str, index: Expr, bitwise_position: Expr) -> list[Expr]:
            wrapped = index + 4 * g.step(f"{name}.below", -index - 1) - 4 * g.step(f"{name}.above", index - 4)
            inside = self.flag_and(f"{name}.inside", g.step(f"{name}.from0", index),
                                                          g.step(f"{name}.to3", 3 - index))
            shifted_position = g.select(f"{name}.shifted", inside, second_bytes + index, fill_first)
            shifted_position = g.select(f"{name}.rotated", rotates, second_bytes + wrapped, shifted_position)
            position = g.select(f"{name}.position", bitwise, bitwise_position, shifted_position)
            bits = []
            for pair in range(0, BITS, 2):
                bits += g.lookup(f"{name}.bits{pair}", position, g.t, [self.bit[pair], self.bit[pair + 1]], tie=UNIQUE)
            return bits

        low = window_byte("window_low", low_index, second_bytes + phase)
        high = window_byte("window_high", low_index + 1, top_bytes + phase)
        both = [self.flag_and(f"both_bits{i}", low[i], high[i]) for i in range(BITS)]
        bit_value = [1 << i for i in range(BITS)]
        and_byte = sum((bit_value[i] * both[i] for i in range(BITS)), Expr())
        or_byte = sum((bit_value[i] * (low[i] + high[i] - both[i]) for i in range(BITS)), Expr())
        xor_byte = sum((bit_value[i] * (low[i] + high[i] - 2 * both[i]) for i in range(BITS)), Expr())

        shift = 8 * left - g.product("left_rest", rest_bits, left) + g.product("right_rest", rest_bits, right)
        window = low + high  # bit j of the 16-bit window
        terms = []
        for amount in range(BITS + 1):
            by_amount = g.equals(f"shift_by{amount}", shift, amount)
            terms += [(bit_value[i], g.one, by_amount + window[i + amount] - 1) for i in range(BITS)]
        shifted_byte = g.neurons("shifted_byte", terms, bounds=(0, 255))
        return (self.gate("out.and", self.is_op[Op.AND], and_byte) + self.gate("out.or", self.is_op[Op.OR], or_byte)
                + self.gate("out.xor", self.is_op[Op.XOR], xor_byte)
                + self.gate("out.shift", self.op_flag(*SHIFTS), shifted_byte))

    def _comparisons(self, top: Expr, second: Expr, top_is_zero: Expr) -> Expr:
        g = self.g
        a, b = second, top  # a binary op computes second OP top
        equal = g.equals("equal", a - b, 0)
        below = g.step("below_unsigned", b - a - 1)
        above = g.step("above_unsigned", a - b - 1)
        a_signed = a - WORD * g.step("second_negative", a - SIGN)
        b_signed = b - WORD * g.step("top_negative", b - SIGN)
        below_signed = g.step("below_signed", b_signed - a_signed - 1)
        above_signed = g.step("above_signed", a_signed - b_signed - 1)
        results = {Op.EQZ: top_is_zero, Op.EQ: equal, Op.NE: 1 - equal, Op.LT_U: below, Op.GT_U: above,
                   Op.LE_U: 1 - above, Op.GE_U: 1 - below, Op.LT_S: below_signed, Op.GT_S: above_signed,
                   Op.LE_S: 1 - above_signed, Op.GE_S: 1 - below_signed}
        return g.persist("comparison", sum((self.gate(f"compare.{op.value}", self.is_op[op], result)
                                            for op, result in results.items()), Expr()))

    def _next_token(self, out_byte: Expr, carry_out: Expr, transfer: Expr, taken: Expr, first_phase: Expr) -> None:
        g, ids, phase = self.g, self.ids, self.phase
        # how many tokens come before the commit
        body_length = (VALUE_BYTES * self.op_flag(*VALUE_OPS, *VARIABLE_WRITES) + self.by_op(STORE_WIDTH)
                       + self.is_op[Op.PUTCHAR] + 2 * transfer)
        in_body = g.step("in_body", body_length - 1 - phase)
        value_base = T.family_base("v") + (T.family_base("vc") - T.family_base("v")) * carry_out
        target_family = T.family_base("ph") + g.product("target_family", transfer, phase) * BYTE_RANGE
        family = (self.gate("family.value", self.op_flag(*VALUE_OPS, *VARIABLE_WRITES), value_base)
                  + self.op_flag(*STORE_WIDTH) * T.family_base("m") + self.is_op[Op.PUTCHAR] * T.family_base("o")
                  + self.gate("family.target", transfer, target_family))
        commit = self.by_op({op: ids[token] for op, token in COMMIT_OF.items()})
        commit = commit + (ids["c.branch"] - ids["c.pop"]) * taken
        next_id = g.select("body_or_commit", in_body, family + out_byte, commit)

        exhausted = self._exhausted()
        trap_reason = (self.gate("trap.op", self.is_op[Op.TRAP], self.immediate)
                       + TrapReason.OUT_OF_BOUNDS_MEMORY * self.out_of_bounds
                       + TrapReason.CALL_STACK_EXHAUSTED * exhausted)
        traps = self.is_op[Op.TRAP] + self.out_of_bounds + exhausted
        trap_id = ids[T.TRAPS[0]] + self.clamp("trap_reason", trap_reason, 0, len(T.TRAPS) - 1)
        stops = self.flag_and("trap_now", first_phase, g.step("any_trap", traps - 1))
        next_id = g.select("unless_trap", stops, trap_id, next_id)
        halts = self.flag_and("halt_now", first_phase, self.is_op[Op.HALT]) + self.is_trap_token
        g.set_next_token_id(g.select("next_id", g.step("halts", halts - 1), ids[T.HALT], next_id))

    def _exhausted(self) -> Expr:
        """1 when this step's call or push would pass the call-depth or stack limit."""
        g = self.g
        too_deep = self.flag_and("call_too_deep", self.is_op[Op.CALL],
                                 g.step("depth_at_limit", self.depth - self.call_limit))
        too_high = self.flag_and("stack_full", self.op_flag(*PUSH_OPS, Op.GETCHAR),
                                 g.step("stack_at_limit", self.sp - T.STACK_LIMIT))
        return g.persist("exhausted", too_deep + too_high)
