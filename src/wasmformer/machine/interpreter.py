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
   record keyed by the local words in use and the index, or by the global's
   slot (4 banks), the newest memory record keyed by its offset in one of
   72 banks, the memory's current size;
4. the byte to emit at this phase of the step, formed by the op's datapath
   (one method each: copy, add, sub, compare, narrow, bitwise, shift,
   multiply, divide, bitcount, input, grow, branch), and the next token.

Which op uses which datapath, reads which source, writes which body and
record: all of that is read from the op table (vm/ops.py). Where the program
comes from is behind one interface, ``ProgramView``: the prompt (the
universal machine) or tables in the weights (a specialised machine). Nothing
here is WebAssembly-specific beyond the op table: the model that comes out is
an ordinary transformer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from wasmformer.graph.expr import UNIQUE, Expr, ExprLike
from wasmformer.graph.graph import Graph
from wasmformer.graph.patterns import floor_quotient, switch
from wasmformer.machine import tokens as T
from wasmformer.machine.baked import SPECIALISED_INPUT_START, BakedProgram
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.vm.ops import (FRAME_CLASSES, OP_TABLE, QUOTIENT_BYTES, STRIDE_FRAME, VALUE_BYTES, WIDE_WORDS, Body,
                               Commit, Datapath, Immediate, Record, Source, ops_where, spec, stack_effect)
from wasmformer.vm.program import Op, TrapReason, VMProgram

# The exactness horizon. Every latest-lookup key lies in [-1, KEY_LIMIT = 2**14]
# and is centred (KEY_CENTER subtracted from key and query alike, which leaves
# (q - k)^2 unchanged), so |q|, |k| <= 2**13 + 1 and the score
# B*(2|q||k| + k^2) + T stays below 2**53 with B = T = 2**24 (16.7M tokens).
# The count heads allow up to 2.37e7 (graph/precision.py).
MAX_EXACT_TOKENS = 1 << 24
KEY_CENTER = T.KEY_LIMIT // 2
BYTE_RANGE = 256
WORD = 1 << 32
GLOBAL_SLOT, DATA_SLOT = 1, 2  # slot_marker's values (0: any other token)
BANK = T.MEMORY_BANK_BYTES
FRAMES = (STRIDE_FRAME, *FRAME_CLASSES)
ADDRESS_KILL = 1 << 34  # above any address term (effective addresses are below 2^33): relu(a - it) is 0
SIGN = 1 << 31
BITS = 8

# Datapath details that only their own method needs.
LEFT_SHIFTS = (Op.SHL, Op.ROTL)  # result byte k comes from bytes k - q and k - q - 1 of the value
ROTATIONS = (Op.ROTL, Op.ROTR)  # byte indices wrap around
ARITHMETIC_SHIFT = Op.SHR_S  # shifts the sign in
TARGET_BYTES = 2  # a transfer writes the next pc as two bytes, high first
BITWISE_OPS = {"and": (Op.AND, Op.AND64), "or": (Op.OR, Op.OR64), "xor": (Op.XOR, Op.XOR64)}  # byte by byte alike
# An i64 comparison from its words: op -> (the high words' flag or None, +1 / -1, the low words' flag), meaning
# result = high flag + [high words equal and low flag] (+1), or 1 - high flag - [equal and low flag] (-1).
WIDE_COMPARISONS = {
    Op.EQ64: (None, 1, "equal"), Op.NE64: (None, -1, "equal"),
    Op.LT_U64: ("below", 1, "below"), Op.GT_U64: ("above", 1, "above"),
    Op.LE_U64: ("above", -1, "above"), Op.GE_U64: ("below", -1, "below"),
    Op.LT_S64: ("below_signed", 1, "below"), Op.GT_S64: ("above_signed", 1, "above"),
    Op.LE_S64: ("above_signed", -1, "above"), Op.GE_S64: ("below_signed", -1, "below"),
}
# The column adder (docs/machine.md): result byte k is T_k mod 256, T_k = C_k + column k of the byte
# products + the carry of column k - 1, never negative. C_k + S_k <= 255 + 4 * 255^2 + 255 = 260,610 and
# a carry is at most 1,023, so T_k < 2^18 = COLUMN_LIMIT: its floor by 256 has 10 bits, found two at a
# time (five threshold levels of 6 units: deeper but narrower than fewer, wider levels; the path has the
# layers to spare).
BYTE_MAX = BYTE_RANGE - 1
COLUMN_LIMIT = 1 << 18
COLUMN_SUM_LIMIT = BYTE_MAX + VALUE_BYTES * BYTE_MAX ** 2 + BYTE_MAX  # the largest C_k + S_k, 260,610
COLUMN_CARRY_LEVELS = (2, 2, 2, 2, 2)
# A quotient byte, found two bits at a time (thresholds on R - k * 4^i * |D|, then R minus the digit's
# multiple of |D|). Outside the quotient phases the divisor is read as at least DIVISOR_FAR, above every
# partial remainder (< 256 * 2^32), so every threshold fails and the digit is 0.
DIGIT_LEVELS = (2, 2, 2, 2)
DIVISOR_FAR = 1 << 40
DIVIDE_PHASES = QUOTIENT_BYTES + VALUE_BYTES  # a division step's body: quotient bytes, then result bytes


def build_interpreter(max_exact_tokens: int = MAX_EXACT_TOKENS, program: VMProgram | None = None) -> Graph:
    """The machine as a graph (compile it with ``compiler.build_model``).

    Without ``program``: the universal machine, reading the program from its
    prompt. With one: that program baked into FFN tables (machine/specialize.py);
    the prompt then holds only the input.
    """
    return _Builder(max_exact_tokens, program).g


@dataclass
class _Record:
    """What a record lookup returns: the record's position and a second value."""
    position: Expr
    value: Expr


class _Builder:
    def __init__(self, max_exact_tokens: int, program: VMProgram | None = None):
        vocab = T.vocabulary()
        self.ids = {token: index for index, token in enumerate(vocab)}
        self._word_bytes: dict[str, list[Expr]] = {}  # word_bytes, by operand: each read once
        self.view: ProgramView = PromptProgram(self) if program is None else BakedTables(self, BakedProgram(program))
        name = T.UNIVERSAL_GRAPH_NAME if program is None else f"{T.UNIVERSAL_GRAPH_NAME}.{program.name}"
        self.g = Graph(vocab, halt_token=T.HALT, output_bytes=T.OUTPUT_BYTES, max_exact_tokens=max_exact_tokens, name=name)
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
                      clear: ExprLike, key_square: ExprLike | None = None) -> list[Expr]:
        """The newest record whose key equals the query (keys centred to keep scores exact). ``key_square``:
        the key's square where the caller has one to share (Graph.lookup)."""
        key = Expr.of(key)
        if key_square is not None:  # (k - c)^2 = k^2 - 2ck + c^2
            key_square = Expr.of(key_square) - 2 * KEY_CENTER * key + KEY_CENTER ** 2
        return self.g.lookup(name, Expr.of(query) - KEY_CENTER, key - KEY_CENTER, values, clear=clear,
                             key_square=key_square)

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

    def during_high_word(self, name: str, flag: ExprLike) -> Expr:
        """``flag`` at phases 4-7, where a two-word value's second word is written; else 0 (one unit)."""
        g = self.g
        phases = sum(self.phase_is[VALUE_BYTES:2 * VALUE_BYTES], Expr())  # exclusive flags
        return g.neurons(name, [(1, g.one, Expr.of(flag) + phases - 1)], bounds=(0, 1))

    def op_flag(self, *ops: Op) -> Expr:
        """1 when the current instruction is one of ``ops`` (ops the machine lacks never are)."""
        return sum((self.is_op[op] for op in ops if op in self.is_op), Expr())

    def flag_where(self, **facts) -> Expr:
        """1 when the current instruction's row has every given fact: ``flag_where(datapath=Datapath.ADD)``."""
        return self.op_flag(*ops_where(**facts))

    def is_any(self, name: str, **facts) -> Expr:
        """``flag_where`` as a 0/1 feature of its own (one unit): what a select's condition needs."""
        return self.either(name, *(self.is_op[op] for op in ops_where(**facts) if op in self.is_op))

    def by_op(self, table: dict[Op, int]) -> Expr:
        """A per-op constant as a linear expression of the op flags (0 for ops not in the table)."""
        return sum((value * self.is_op[op] for op, value in table.items() if op in self.is_op), Expr())

    def by_row(self, column, **facts) -> Expr:
        """A column of the op table (``column(row)``) over the rows with the given facts, as ``by_op``."""
        return self.by_op({op: column(spec(op)) for op in ops_where(**facts)})

    # -- 0. what each token is -----------------------------------------------------------------
    def _token_tables(self) -> None:
        g, vocab = self.g, self.g.vocab
        family = {token: token.split(".")[0] for token in vocab if "." in token}
        byte_tokens = {token for token in vocab if family.get(token) in T.BYTE_FAMILIES}
        self.byte = g.token_table("byte", {token: int(token.split(".")[1], 16) for token in byte_tokens})
        self.is_carry = g.token_table("is_carry", {token: 1 for token in byte_tokens if family[token] == "vc"})
        self.is_value_byte = g.token_table("is_value_byte", {t: 1 for t in byte_tokens if family[t] in ("v", "vc")})
        self.is_prompt_byte = g.token_table("is_prompt_byte", {t: 1 for t in byte_tokens if family[t] == "i"})
        # per-byte counts for clz / ctz / popcnt; a zero byte has 8 leading and 8 trailing zeros
        byte_value = {token: int(token.split(".")[1], 16) for token in byte_tokens}
        self.popcount8 = g.token_table("popcount8", {t: v.bit_count() for t, v in byte_value.items() if v})
        self.leading8 = g.token_table("leading8", {t: BITS - v.bit_length() for t, v in byte_value.items()})
        self.trailing8 = g.token_table("trailing8", {t: (v & -v).bit_length() - 1 if v else BITS
                                                     for t, v in byte_value.items()})
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
        # an exit status byte (x.XX): `halt` follows it, as it follows a trap token
        self.is_exit_token = g.token_table("is_exit_token", {token: 1 for token in T.EXIT_STATUS_BYTES})
        # the marker of a 5-token prompt slot that is not an instruction: 1 for a global, 2 for a data record
        self.slot_marker = g.token_table("slot_marker", {T.GLOBAL: GLOBAL_SLOT, T.DATA_RECORD: DATA_SLOT})
        self.is_all_ones = g.token_table("is_all_ones", {T.byte_token("v", BYTE_MAX): 1})
        self.opcode_here = g.token_table("opcode", {T.opcode_token(op): spec(op).opcode for op in MACHINE_OPS})
        self.opcode_square_here = g.token_table("opcode_square", {T.opcode_token(op): spec(op).opcode ** 2
                                                                  for op in MACHINE_OPS})
        self.pushes = g.token_table("pushes", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == 1})
        self.pops_one = g.token_table("pops_one", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == -1})
        self.pops_two = g.token_table("pops_two", {token: 1 for token, delta in T.STACK_DELTA.items() if delta == -2})
        self.pops_three = g.token_table("pops_three",
                                        {token: 1 for token, delta in T.STACK_DELTA.items() if delta == -3})
        # per frame class (vm/ops.py FRAME_CLASSES): the commits of calls entering and returns leaving one
        self.calls_of = {frame: g.token_table(f"is_call_commit.{frame}", {token: 1 for token, of in T.CALL_COMMITS.items()
                                                                          if of == frame})
                         for frame in FRAMES}
        self.returns_of = {frame: g.token_table(f"is_return_commit.{frame}",
                                                {token: 1 for token, of in T.RETURN_COMMITS.items() if of == frame})
                           for frame in FRAMES}
        self.is_getc_commit = g.token_table("is_getc_commit", {Commit.GETC.value: 1})

    def _previous_tokens(self) -> None:
        """The bytes of the three tokens before this one, and the op or marker 4 back."""
        g = self.g
        self.byte_back1, popcount_back1 = g.lookup("back1", g.t - 1, g.t, [self.byte, self.popcount8], tie=UNIQUE)
        self.pair_popcount = self.popcount8 + popcount_back1  # set bits of this byte and the one before
        (self.byte_back2,) = g.lookup("back2", g.t - 2, g.t, [self.byte], tie=UNIQUE)
        (self.byte_back3,) = g.lookup("back3", g.t - 3, g.t, [self.byte], tie=UNIQUE)
        opcode_back4, marker_back4 = g.lookup("back4", g.t - 4, g.t, [self.opcode_here, self.slot_marker], tie=UNIQUE)
        # markers are 0, 1 or 2: [m == 2] = relu(m - 1) and [m == 1] = m - 2 relu(m - 1)
        data_marker_back4 = g.relu("data_marker_back4", marker_back4 - 1)
        global_marker_back4 = marker_back4 - 2 * data_marker_back4
        # The 32-bit value of the four bytes ending here (a slot's value at its last byte).
        self.word_here = g.persist("word_here", self.byte_back3 + 256 * self.byte_back2 + 65536 * self.byte_back1
                                   + (1 << 24) * self.byte)
        self.slot_opcode = opcode_back4
        self.ends_global_slot = self.flag_and("ends_global_slot", global_marker_back4, self.is_prompt_byte)
        self.ends_data_record = self.flag_and("ends_data_record", data_marker_back4, self.is_prompt_byte)
        # d A0 A1 A2 V: at the value byte, the address's bytes are 3, 2 and 1 back
        self.data_address = self.byte_back3 + 256 * self.byte_back2 + 65536 * self.byte_back1
        self.target_here = 256 * self.byte_back2 + self.byte_back1  # at a transfer commit: ph, pl before it

    # -- 1. bookkeeping -----------------------------------------------------------------------
    def _bookkeeping(self) -> None:
        g = self.g
        commits, pushes = g.count_before("commits", [self.is_commit, self.pushes])
        pops_one, pops_two = g.count_before("pops", [self.pops_one, self.pops_two])
        getcs, pops_three = g.count_before("getcs", [self.is_getc_commit, self.pops_three])
        self.commits_through = commits + self.is_commit
        sp = (pushes + self.pushes - pops_one - self.pops_one - 2 * (pops_two + self.pops_two)
              - 3 * (pops_three + self.pops_three))
        self.sp = self.clamp("sp", sp, -2, T.KEY_LIMIT)
        self.memory_limit, self.growable_pages, self.stride, self.input_start = self.view.parameters()
        self._frames()
        self.cursor = getcs + self.is_getc_commit  # getchar steps committed so far

        (commit_at,) = g.lookup("newest_commit", 1, 1, [g.t], clear=self.not_commit)
        self.phase = g.persist("phase", g.t - commit_at)  # 0 at a commit: the next token starts a step
        # which token of the step comes next, as flags shared by every datapath (a step writes at most 9)
        self.phase_is = [g.equals(f"phase_is{p}", self.phase, p) for p in range(DIVIDE_PHASES + 1)]
        target, steps_at = g.lookup("newest_transfer", 1, 1, [self.target_here, self.commits_through],
                                    clear=self.not_transfer)
        self.pc = self.clamp("pc", target + self.commits_through - steps_at, 0, T.MAX_PC)

    def _frames(self) -> None:
        """The call depth and the local words the live frames reserve, from the call and return commits: for
        each frame class, how many frames of it are live (calls of it minus returns from it, this token's
        commit included). A frame reserves its class's words; the entry frame and a plain call's the stride."""
        g = self.g
        pairs = [(self.calls_of[frame], self.returns_of[frame]) for frame in FRAMES]
        before = [balance for start in range(0, len(pairs), 2)
                  for balance in g.balance_before(f"frames{start // 2}", pairs[start:start + 2])]
        live = {frame: balance + up - down for frame, balance, (up, down) in zip(FRAMES, before, pairs)}
        self.depth = self.clamp("call_depth", sum(live.values(), Expr()), 0, T.MAX_CALL_DEPTH)
        stride_words = g.product("stride_frame_words", live[STRIDE_FRAME] + 1, self.stride)
        words = stride_words + sum((frame * live[frame] for frame in FRAME_CLASSES), Expr())
        self.words_in_use = self.clamp("local_words_in_use", words, 0, T.VARIABLE_KEYS)

    # -- 2. fetch and decode ---------------------------------------------------------------------
    def _fetch(self) -> None:
        g = self.g
        opcode, square, self.immediate = self.view.fetch()
        # One unit per op: relu(1 - (opcode - k)^2) = relu(2k opcode - opcode^2 - k^2 + 1) is 1 at k and 0 at
        # every other integer (the opcode's square comes with it, so the flag is linear in what is fetched).
        self.is_op = {op: g.neurons(f"is.{op.value}", [(1, g.one, 2 * spec(op).opcode * opcode - square
                                                         - spec(op).opcode ** 2 + 1)], bounds=(0, 1))
                      for op in sorted(MACHINE_OPS, key=lambda op: spec(op).opcode)}
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
        self._operand_words()
        self._variables()
        self._memory()

    def _operand_words(self) -> None:
        """The words a binary op reads at this phase: for i32 ops second and top; an i64 op's operands are
        four words (a low, a high, b low, b high from the deepest), so at phases 0-3 it reads the low words
        (fourth and second), at phases 4-7 the high ones (third and top). Two lookups whose slot depends on
        the phase, so that every byte position is linear in what they return (no select after a lookup)."""
        g = self.g
        # the i64 binary ops and comparisons (two i64s), and store64 (an address and an i64)
        wide = self.either("is_wide", *(self.is_op[op] for op in ops_where(wide=True)
                                        if spec(op).pops > WIDE_WORDS and op in self.is_op))
        self.wide_high_word = self.during_high_word("wide_high_word", wide)
        self.deeper_operand = self._stack_slot("deeper_operand", self.sp - 1 - 2 * wide + self.wide_high_word)
        self.top_operand = self._stack_slot("top_operand", self.sp - wide + self.wide_high_word)

    def _variables(self) -> None:
        """Globals keyed by their prompt slot, locals by the words in use (tokens.local_key), in banks as memory
        is; the frame from the call record."""
        g = self.g
        self.local_key = T.local_key(self.words_in_use, self.small_immediate)
        self.global_key = T.global_key(0) + T.SLOT * self.small_immediate
        reads_local = self.flag_where(source=Source.VARIABLE, immediate=Immediate.LOCAL)
        reads_global = self.flag_where(source=Source.VARIABLE, immediate=Immediate.GLOBAL)
        query = self.clamp("variable_query", self.gate("local_query", reads_local, self.local_key)
                           + self.gate("global_query", reads_global, self.global_key) - 1 + reads_local
                           + reads_global, -1, T.VARIABLE_KEYS - 1)
        self.variable_key = g.placeholder("variable_key", -1, T.VARIABLE_KEYS - 1)
        self.holds_variable = g.placeholder("holds_variable", 0, 1)
        # one address per token: a record's key where it holds one (and -1 at <s>), else the key asked for
        address = g.neurons("variable_address", [(1, self.holds_variable, self.variable_key + 1),
                                                 (1, g.one, query + 1 - ADDRESS_KILL * self.holds_variable)],
                            bounds=(0, T.VARIABLE_KEYS)) - 1
        variable_at, key_found = self.banked_lookup("variable", address, self.holds_variable + self.is_start,
                                                    T.VARIABLE_BANKS, [g.t, self.variable_key + 1])
        found_key = key_found - 1

        # the current frame began at the newest call record for this depth
        self.call_key = g.placeholder("call_key", -1, T.MAX_CALL_DEPTH + 1)
        self.holds_call = g.placeholder("holds_call", 0, 1)
        self.frame_start = self.view.frame(self.cleared("frame.cleared", self.holds_call))
        found = g.equals("variable_found", found_key - query, 0)
        fresh = g.step("variable_fresh", variable_at - self.frame_start)  # written in this frame
        readable = self.either("variable_readable", self.flag_and("local_readable", found, fresh, reads_local),
                               self.flag_and("global_readable", found, reads_global))
        self.view.note_global_read(found, reads_global)
        self.variable_first_byte = g.select("variable_first_byte", readable, variable_at - 3, T.ZERO_FIRST_BYTE)

    def _memory(self) -> None:
        """The effective address of a load or store, the bounds check, and the byte a load reads."""
        g = self.g
        is_store = self.is_any("is_store", record=Record.MEMORY, wide=False)
        stores_i64 = self.is_any("stores_i64", record=Record.MEMORY, wide=True)  # address low high
        address = (self.top.value + self.gate("address.store", is_store, self.second.value - self.top.value)
                   + self.gate("address.store64", stores_i64, self.third.value - self.top.value))
        self.effective_address = address + self.immediate
        memory_bytes = self._memory_size()
        memory_width = self.by_row(lambda row: row.width, immediate=Immediate.OFFSET)
        memory_op = self.flag_where(immediate=Immediate.OFFSET)
        beyond = g.step("beyond_memory", self.effective_address + memory_width - memory_bytes - 1)
        self.out_of_bounds = self.flag_and("out_of_bounds", beyond, memory_op)
        # loads and sign extensions read byte min(phase, width - 1): above the width, the top byte gives the sign
        self.narrow_width = self.by_row(lambda row: row.width, datapath=Datapath.NARROW)
        # an i64 load writes its high word first: byte (phase + 4) mod 8 (writes_high_word_first)
        high_first = self.is_any("load_high_first", immediate=Immediate.OFFSET, pushes=WIDE_WORDS)
        second_half = self.during_high_word("load_low_word_now", high_first)
        self.byte_index = self.phase + VALUE_BYTES * high_first - 2 * VALUE_BYTES * second_half
        self.narrow_index = self.byte_index - g.relu("past_width", self.byte_index - self.narrow_width + 1)
        self._memory_banks()

    def _memory_size(self) -> Expr:
        """The memory's size in bytes now: the initial bytes plus the pages memory.grow has added so far.

        A *grow record* is the first result byte of a memory.grow that
        succeeded (the old size in pages: never 0xff); it holds the pages
        grown after it, old size - initial size (the immediate) + delta. The
        newest one is found by a lookup (the sentinel <s> holds 0).
        """
        g = self.g
        grows = self.flag_and("grow_record", self.op_flag(Op.MEMORY_GROW), self.phase_is[1], 1 - self.is_all_ones)
        grown_here = self.gate("grown_here", grows, self.byte - self.immediate + self.top.value)
        (grown,) = g.lookup("memory_grown", 1, 1, [grown_here],
                            clear=self.cleared("grown.cleared", grows + self.is_start))
        self.grown_pages = self.clamp("grown_pages", grown, 0, T.MAX_PAGES)
        return self.memory_limit + T.WASM_PAGE * self.grown_pages

    def _memory_banks(self) -> None:
        """The byte a load reads: the newest memory record at its address (``banked_lookup``).

        ``address_here`` is a memory record's address at a record token (an
        ``m.XX`` byte, a prompt data record's value byte), the byte a load
        reads at a load's tokens, else -1. Each record carries its byte and
        address as one value, byte + 256 (address + 1), so the sum over banks
        says whether the record found has the address asked for
        (docs/machine.md, "Memory banks").
        """
        g = self.g
        # 1 at a record, 2 at <s>: with the bank flag, 2 means live (one feature: each bank's clear unit reads it)
        record_weight = g.persist("memory.record_weight", self.is_stored_byte + self.ends_data_record + 2 * self.is_start)
        stored_address = self.effective_address + self.phase - 1  # the m token at phase p holds byte p - 1
        is_load = self.is_any("is_load", immediate=Immediate.OFFSET, record=Record.STACK)
        # Each address is capped at MAX_MEMORY within its units (relu(a) - relu(a - MAX_MEMORY)): past the memory
        # a load traps before its byte is used. At <s> every term is 0 (its flags, read from prompt positions
        # that do not exist yet, could be anything): the sentinel's address is -1 in every bank, and every
        # key and clear flag stays an exact integer even from a malformed prompt.
        at_start = ADDRESS_KILL * self.is_start
        load_address = self.effective_address + self.narrow_index + 1
        capped = [(self.is_stored_byte, stored_address + 1), (self.ends_data_record, self.data_address + 1),
                  (is_load, load_address)]
        self.address_here = g.neurons("memory_address", [term for flag, address in capped for term in (
            (1, flag, address - at_start), (-1, flag, address - T.MAX_MEMORY - at_start))],
            bounds=(0, T.MAX_MEMORY)) - 1
        (total,) = self.banked_lookup("memory", self.address_here, record_weight, T.MEMORY_BANKS,
                                      [self.byte + BYTE_RANGE * (self.address_here + 1)])
        # the sum minus what a record at this address would carry above its byte: the byte, if that is what
        # the banks found (one feature: the banks' answers are read once)
        byte_found = g.persist("memory.byte_found", total - BYTE_RANGE * (self.address_here + 1))
        found = (g.step("memory_found_above", byte_found) + g.step("memory_found_below", BYTE_MAX - byte_found)
                 - 1)  # 1 when the byte is in [0, 255], else 0: a relu's argument in loaded_byte
        self.loaded_byte = self.view.loaded_byte(byte_found, found)

    def banked_lookup(self, name: str, address: Expr, record_weight: ExprLike, banks: int,
                      values: list[ExprLike]) -> list[Expr]:
        """The newest record at ``address``, for addresses up to banks * BANK: one record lookup per bank.

        ``address`` is a record's address at a record token, the address asked
        for at a reading token, else -1 (and -1 at <s>); ``record_weight`` is 1
        at a record token, 2 at <s>, else 0. Bank b keys its own records by
        their offset in the bank and clears every other token; its query is the
        offset for an address in bank b, else -1, the key of the sentinel <s>.
        ``values`` must be 0 at <s>: every bank but the address's answers with
        <s>, so the sums over banks are the values of the record found.
        """
        g = self.g
        # [address >= b * BANK] for every bank b: the bank is one of them minus the next; the offset follows
        at_least = [g.step(f"{name}.bank_at_least{b}", address - b * BANK) for b in range(banks)]
        at_least.append(Expr())
        # one feature, so that each bank's units read one slot rather than every bank's step
        offset = g.neurons(f"{name}.offset", [(1, address - BANK * sum(at_least[1:], Expr()), g.one)],
                           bounds=(-1, BANK - 1))
        # offset^2 shared by every bank's key square: right wherever a key is live (a record in its bank, <s>)
        offset_square = g.neurons(f"{name}.offset_square", [(1, offset + 1, offset + 1)],
                                  bounds=(0, BANK * BANK)) - 2 * (offset + 1) + 1
        totals = [Expr() for _ in values]
        for bank in range(banks):
            in_bank = at_least[bank] - at_least[bank + 1]
            key = g.neurons(f"{name}.bank{bank}.key", [(1, offset + 1, in_bank)], bounds=(0, BANK)) - 1
            # live: a record in this bank, or <s> (whose address is -1: in no bank); cleared: every other token
            live = record_weight + in_bank  # 2 when live, else 0 or 1
            # [live < 2] = relu(2 - live) - relu(1 - live): two units whose only varying input is the gate (a
            # shape the engines run fastest), and 0 or 1 for any integer live (a malformed prompt included)
            cleared = g.neurons(f"{name}.bank{bank}.cleared", [(1, g.one, 2 - live), (-1, g.one, 1 - live)],
                                bounds=(0, 1))
            found = self.record_lookup(f"{name}.bank{bank}", key, key, values, clear=cleared,
                                       key_square=offset_square)
            totals = [total + value for total, value in zip(totals, found)]
        return totals

    # -- records this token writes ------------------------------------------------------------------
    def _records(self) -> None:
        g = self.g
        # a value's last byte: phase 4, or 8 after a division's quotient bytes (no other step writes a value
        # byte at phase 8, and a division's phase 4 is a q.XX byte); no op flag needed, which keeps it early
        at_last_byte = self.phase_is[VALUE_BYTES] + self.phase_is[QUOTIENT_BYTES + VALUE_BYTES]
        value_record = self.flag_and("value_record", self.is_value_byte, at_last_byte,
                                     self.flag_where(record=Record.STACK))
        stack_key = self.sp + self.by_row(lambda row: stack_effect(row.op), record=Record.STACK)
        # a step pushing an i64 writes two records: its low word's one slot below the high word's, at phase 4
        # (or at phase 8 for a step that writes its high word first: an i64 load)
        low_word_first = self.flag_and("low_word_record", self.phase_is[VALUE_BYTES], self.op_flag(
            *(op for op in ops_where(record=Record.STACK, pushes=WIDE_WORDS) if not spec(op).writes_high_word_first)))
        low_word_last = self.flag_and("low_word_record_last", self.phase_is[2 * VALUE_BYTES], self.op_flag(
            *(op for op in ops_where(record=Record.STACK, pushes=WIDE_WORDS) if spec(op).writes_high_word_first)))
        key_if_record = self.gate("stack_key_if_record", value_record, stack_key + 1 - low_word_first - low_word_last) - 1
        g.define(self.stack_key, self.clamp("stack_key_here", key_if_record, -1, T.KEY_LIMIT))
        g.define(self.holds_stack_record, self.either("holds_stack_record_here", value_record, self.is_start))

        local_write = self.flag_and("local_write", self.is_value_byte, at_last_byte,
                                    self.flag_where(record=Record.LOCAL))
        global_write = self.flag_and("global_write", self.is_value_byte, at_last_byte,
                                     self.flag_where(record=Record.GLOBAL))
        variable_key = (self.gate("local_key_if_write", local_write, self.local_key + 1)
                        + self.gate("global_key_if_write", global_write, self.global_key + 1)
                        + self.gate("global_slot_key", self.ends_global_slot, g.t + 1) - 1)
        g.define(self.variable_key, self.clamp("variable_key_here", variable_key, -1, T.VARIABLE_KEYS - 1))
        g.define(self.holds_variable, self.either("holds_variable_here", local_write, global_write,
                                                  self.ends_global_slot, self.is_start))

        call_record = self.flag_and("call_record", self.is_target_low, self.flag_where(record=Record.CALL))
        g.define(self.call_key, self.clamp("call_key_here", self.gate("call_depth_if_record", call_record,
                                                                      self.depth + 2) - 1 + self.is_run,
                                           -1, T.MAX_CALL_DEPTH + 1))
        g.define(self.holds_call, self.either("holds_call_here", call_record, self.is_run, self.is_start))


    # -- 4. the next token ------------------------------------------------------------------------------
    def _emit(self) -> None:
        g, phase = self.g, self.phase
        self.first_phase = self.phase_is[0]
        self.top_is_zero = g.equals("top_is_zero", self.top.value, 0)
        self.taken = (self.gate("taken_if_zero", self.is_op[Op.JUMP_IF_ZERO], self.top_is_zero)
                      + self.gate("taken_if_nonzero", self.is_op[Op.JUMP_IF_NONZERO], 1 - self.top_is_zero))
        self.top_bytes, self.second_bytes = self.top.position - 3, self.second.position - 3
        self._operand_positions()

        # every datapath that reads bytes reads them from one position: its source's, plus the phase
        source = sum((self.gate(f"src.{kind.value}", self.flag_where(source=kind), position)
                      for kind, position in self._source_positions().items()), Expr())
        source = self.clamp("source_position", source, 0, MAX_EXACT_TOKENS)
        self.source_byte, self.source_is_input = g.lookup("source", source, g.t, [self.byte, self.is_prompt_byte],
                                                          tie=UNIQUE)
        # the top's byte at this phase; for shifts its byte 0, which holds the shift count
        is_shift = self.is_any("is_shift", datapath=Datapath.SHIFT)
        operand_at = self.top_operand_at - g.product("shift_count_byte", phase, is_shift)
        (self.operand_byte,) = g.lookup("operand", operand_at, g.t, [self.byte], tie=UNIQUE)

        self.carry_out = Expr()  # add and sub set it
        self.in_quotient, self.divide_traps = Expr(), (Expr(), Expr())  # div and rem set them
        datapaths = {Datapath.COPY: self._copy, Datapath.ADD: self._add, Datapath.SUB: self._sub,
                     Datapath.COMPARE: self._compare, Datapath.NARROW: self._narrow,
                     Datapath.BITWISE: self._bitwise, Datapath.SHIFT: self._shift, Datapath.INPUT: self._input,
                     Datapath.GROW: self._grow, Datapath.BRANCH: self._branch, Datapath.MULTIPLY: self._multiply,
                     Datapath.DIVIDE: self._divide, Datapath.BITCOUNT: self._bitcount, Datapath.CONTROL: None}
        used = {spec(op).datapath for op in MACHINE_OPS}
        out_byte = sum((datapaths[kind](self.flag_where(datapath=kind)) for kind in Datapath
                        if kind in used and datapaths[kind] is not None), Expr())
        out_byte = g.persist("out_byte", out_byte + self.view.direct_bytes())
        self._next_token(out_byte)

    def _operand_positions(self) -> None:
        """Where the two operands' bytes for this phase lie (``_operand_words``; a high word's byte k is at
        phase k + 4)."""
        high = VALUE_BYTES * self.wide_high_word
        self.deeper_operand_at = self.deeper_operand.position - 3 + self.phase - high
        self.top_operand_at = self.top_operand.position - 3 + self.phase - high

    def _source_positions(self) -> dict[Source, Expr]:
        """Where each source's byte for this phase lies (sources the program view reads are its own)."""
        g, phase = self.g, self.phase
        third_bytes = self.third.position - 3
        chosen_bytes = g.select("select_bytes", 1 - self.top_is_zero, third_bytes, self.second_bytes)
        return {
            **self.view.source_positions(),
            Source.VARIABLE: self.variable_first_byte + phase,
            Source.SELECTED: chosen_bytes + phase,
            Source.SECOND: self.deeper_operand_at,
            Source.TOP: self.top_bytes + phase,
            Source.INPUT: self.input_start + self.cursor,
            Source.TOP_NARROWED: self.top_bytes + self.narrow_index,
            Source.TOP_WORD: self.top_operand_at,
        }

    # -- the datapaths: each takes the flag of its ops and returns its share of the output byte --------
    def _copy(self, uses: Expr) -> Expr:
        return self.gate("out.copy", uses, self.source_byte)

    def _branch(self, uses: Expr) -> Expr:
        """A conditional jump copies its target's bytes only when taken (``taken`` implies ``uses``)."""
        return self.gate("out.branch", self.taken, self.source_byte)

    def _add(self, uses: Expr) -> Expr:
        """One byte of second + top with the carry mark of the previous byte token."""
        byte_sum = self.source_byte + self.operand_byte + self.is_carry
        carries = self.g.step("sum_carries", byte_sum - BYTE_RANGE)
        self.carry_out = self.carry_out + self.gate("carry_out.add", uses, carries)
        return self.gate("out.add", uses, byte_sum - BYTE_RANGE * carries)

    def _sub(self, uses: Expr) -> Expr:
        """One byte of second - top with the borrow mark of the previous byte token."""
        difference = self.source_byte - self.operand_byte - self.is_carry
        borrows = self.g.step("difference_borrows", -difference - 1)
        self.carry_out = self.carry_out + self.gate("carry_out.sub", uses, borrows)
        return self.gate("out.sub", uses, difference + BYTE_RANGE * borrows)

    def _compare(self, uses: Expr) -> Expr:
        """0 or 1 in byte 0 (later bytes 0), from whole 32-bit words: second OP top; for two i64s the high
        words (third OP top) decide unless equal, then the low words (fourth OP second, unsigned)."""
        g = self.g
        narrow = self._word_comparisons("", self.second.value, self.top.value)
        high = self._word_comparisons("high_", self.third.value, self.top.value)
        # at phase 0, where the result is formed, the operand-word lookups read the low words
        low_a, low_b = self.deeper_operand.value, self.top_operand.value
        low = {"equal": g.equals("low_equal", low_a - low_b, 0), "below": g.step("low_below", low_b - low_a - 1),
               "above": g.step("low_above", low_a - low_b - 1)}
        results = {Op.EQZ: self.top_is_zero, Op.EQ: narrow["equal"], Op.NE: 1 - narrow["equal"],
                   Op.LT_U: narrow["below"], Op.GT_U: narrow["above"], Op.LE_U: 1 - narrow["above"],
                   Op.GE_U: 1 - narrow["below"], Op.LT_S: narrow["below_signed"], Op.GT_S: narrow["above_signed"],
                   Op.LE_S: 1 - narrow["above_signed"], Op.GE_S: 1 - narrow["below_signed"]}
        terms = [self.gate(f"compare.{op.value}", self.is_op[op], result) for op, result in results.items()]
        # an i64 comparison: the high words' verdict, plus or minus "high words equal and the low words' verdict"
        for op, (high_term, sign, low_term) in WIDE_COMPARISONS.items():
            if op not in self.is_op:
                continue
            high_verdict = high[high_term] if high_term is not None else Expr()
            verdict = high_verdict if sign > 0 else 1 - high_verdict
            if high_term is not None or sign < 0:
                terms.append(self.gate(f"compare.{op.value}", self.is_op[op], verdict))
            terms.append(sign * self.flag_and(f"compare.{op.value}.low", self.is_op[op], high["equal"],
                                              low[low_term]))
        comparison = g.persist("comparison", sum(terms, Expr()))
        return self.gate("out.compare", self.first_phase, comparison)

    def _word_comparisons(self, prefix: str, a: Expr, b: Expr) -> dict[str, Expr]:
        """Flags comparing two 32-bit words: equal, below/above unsigned and signed."""
        g = self.g
        a_signed = a - WORD * g.step(f"{prefix}compared_negative", a - SIGN)
        b_signed = b - WORD * g.step(f"{prefix}top_negative", b - SIGN)
        return {"equal": g.equals(f"{prefix}equal", a - b, 0), "below": g.step(f"{prefix}below_unsigned", b - a - 1),
                "above": g.step(f"{prefix}above_unsigned", a - b - 1),
                "below_signed": g.step(f"{prefix}below_signed", b_signed - a_signed - 1),
                "above_signed": g.step(f"{prefix}above_signed", a_signed - b_signed - 1)}

    def _narrow(self, uses: Expr) -> Expr:
        """A loaded byte (loads) or the top's byte (sign extensions) below the width; the fill above it."""
        g = self.g
        narrow = (self.gate("narrow.load", self.flag_where(datapath=Datapath.NARROW, immediate=Immediate.OFFSET),
                            self.loaded_byte)
                  + self.gate("narrow.extend", self.flag_where(datapath=Datapath.NARROW, source=Source.TOP_NARROWED),
                              self.source_byte))
        signed_narrow = self.flag_where(datapath=Datapath.NARROW, signed=True)
        sign_fill = self.gate("sign_fill", signed_narrow, g.step("narrow_negative", narrow - 128))
        past_width = g.step("narrow_past_width", self.byte_index - self.narrow_width)
        narrow_byte = g.select("narrow_byte", past_width, 255 * sign_fill, narrow)
        return self.gate("out.narrow", uses, narrow_byte)

    def _input(self, uses: Expr) -> Expr:
        """getchar: the input byte under the cursor, or -1 (all bytes 0xff) past the end of the input."""
        at_end = self.flag_and("input_ended", 1 - self.source_is_input, uses)
        first = self.gate("getchar_byte", self.flag_and("getchar_first", self.first_phase, uses), self.source_byte)
        return self.gate("out.getchar", 1 - at_end, first) + 255 * at_end

    def _grow(self, uses: Expr) -> Expr:
        """memory.size and memory.grow: the size in pages before growing (the immediate, the initial size,
        plus the pages grown), or -1 when the delta does not fit in the pages the memory may still grow."""
        g = self.g
        delta = self.gate("grow.delta", self.op_flag(Op.MEMORY_GROW), self.top.value)  # memory.size pops nothing
        fits = g.step("grow.fits", self.growable_pages - self.grown_pages - delta)
        first_byte = g.select("grow.first_byte", fits, self.immediate + self.grown_pages, BYTE_MAX)
        # bytes 1-3: 0xff after a first byte 0xff (the size in pages is below 0xff), else 0
        later_bytes = BYTE_MAX * self.is_all_ones
        at_first = self.flag_and("grow_first", uses, self.first_phase)
        return self.gate("out.grow_first", at_first, first_byte) + self.gate("out.grow_later", uses - at_first,
                                                                             later_bytes)

    def _bitwise(self, uses: Expr) -> Expr:
        """and / or / xor: byte ``phase`` of second OP top, bit by bit."""
        low, high, _ = self.bit_windows
        both = [self.flag_and(f"both_bits{i}", low[i], high[i]) for i in range(BITS)]
        bit_value = [1 << i for i in range(BITS)]
        and_byte = sum((bit_value[i] * both[i] for i in range(BITS)), Expr())
        or_byte = sum((bit_value[i] * (low[i] + high[i] - both[i]) for i in range(BITS)), Expr())
        xor_byte = sum((bit_value[i] * (low[i] + high[i] - 2 * both[i]) for i in range(BITS)), Expr())
        return (self.gate("out.and", self.op_flag(*BITWISE_OPS["and"]), and_byte)
                + self.gate("out.or", self.op_flag(*BITWISE_OPS["or"]), or_byte)
                + self.gate("out.xor", self.op_flag(*BITWISE_OPS["xor"]), xor_byte))

    def _shift(self, uses: Expr) -> Expr:
        """Shifts and rotations of second by top: result byte k from a 16-bit window shifted right by s bits."""
        g = self.g
        low, high, rest_bits = self.bit_windows
        window = low + high  # bit j of the 16-bit window
        left = self.op_flag(*LEFT_SHIFTS)
        right = uses - left
        shift = 8 * left - g.product("left_rest", rest_bits, left) + g.product("right_rest", rest_bits, right)
        bit_value = [1 << i for i in range(BITS)]
        terms = []
        for amount in range(BITS + 1):
            by_amount = g.equals(f"shift_by{amount}", shift, amount)
            terms += [(bit_value[i], g.one, by_amount + window[i + amount] - 1) for i in range(BITS)]
        shifted_byte = g.neurons("shifted_byte", terms, bounds=(0, 255))
        return self.gate("out.shift", uses, shifted_byte)

    def _multiply(self, uses: Expr) -> Expr:
        """Byte k of second * top mod 2^32 at phase k, from the column adder.

        The column adder also forms the result bytes of div and rem (``_divide``
        returns only their quotient bytes): its byte is 0 at every other token,
        so it is returned once, here, ungated.
        """
        return self.column_byte

    def _divide(self, uses: Expr) -> Expr:
        """div / rem: four quotient bytes (q.XX, most significant first); the result bytes are the column adder's.

        Restoring division on the magnitudes |A| (second) and |D| (top), one
        quotient byte per token: before digit p the partial remainder is
        R = floor(|A| / 256^p) - sum_{m>p} 256^(m-p) q_m |D| < 256 |D|, linear
        in |A|'s bytes and in the products q_m * |D| of the quotient bytes
        already written (this token and the two before it). The digit
        floor(R / |D|) is found two bits at a time by thresholds on R - k|D|
        (docs/machine.md).
        """
        g, phase_is = self.g, self.phase_is
        a = self.word_bytes(self.second.position, "second")
        negative_a, negative_d = self.negative_operands
        divisor = self.top.value + self.gate("div.negate_d", negative_d, WORD - 2 * self.top.value)  # |D|
        # q_m * |D| for the quotient bytes written d = 0, 1, 2 tokens back, each only in the phases where that
        # token is one (else 0). Their true bounds: a nonzero q_m has q_m * |D| * 256^m <= |A| < 2^32, and the
        # byte d back is q_m with m >= d + 1, so q_m * |D| < 2^(8 (3 - d)): 256^(d+1) times it stays below 2^32.
        written = [self.byte, self.byte_back1, self.byte_back2]
        subtracted = []
        for d in range(len(written)):
            holds_quotient = sum(phase_is[d + 1:QUOTIENT_BYTES], Expr()) + uses - 1  # 1, else 0 or -1
            quotient_byte = written[d] - BYTE_RANGE * (1 - holds_quotient)  # below 0 unless it holds one
            subtracted.append(g.neurons(f"div.q_back{d}", [(1, divisor, quotient_byte)],
                                        bounds=(0, (1 << BITS * (VALUE_BYTES - 1 - d)) - 1)))
        # when A < 0 the low bytes below byte p matter: |A| = 2^32 - A rounds floor(|A| / 256^p) down once more
        low_nonzero = [Expr()] + [1 - g.equals(f"div.low{p}_zero", sum((a[i] * BYTE_RANGE ** i for i in range(p)),
                                                                       Expr()), 0) for p in range(1, VALUE_BYTES)]
        terms = []
        for step in range(QUOTIENT_BYTES):  # the token at phase ``step`` finds digit p
            p = VALUE_BYTES - 1 - step
            high_part = sum((a[i] * BYTE_RANGE ** (i - p) for i in range(p, VALUE_BYTES)), Expr())  # floor(A / 256^p)
            removed = sum((subtracted[d] * BYTE_RANGE ** (d + 1) for d in range(step)), Expr())
            terms.append((1, high_part - removed, phase_is[step] + uses - 1))  # 1 only when both are
            negated = WORD // BYTE_RANGE ** p - 2 * high_part - low_nonzero[p]  # |A|'s part minus A's
            terms.append((1, negated, phase_is[step] + uses + negative_a - 2))
        remainder = g.neurons("div.partial_remainder", terms, bounds=(0, BYTE_RANGE * WORD - 1), exact=True)
        # Outside the quotient phases the divisor reads as at least DIVISOR_FAR > any remainder: every
        # threshold fails and the digit is 0 without a gate.
        in_quotient = sum(phase_is[:QUOTIENT_BYTES], Expr()) + uses - 1  # 1, else 0 or -1
        # one feature, so that each threshold unit reads two slots (a unit's terms are its cost per token)
        far_divisor = g.persist("div.far_divisor", divisor + DIVISOR_FAR * (1 - in_quotient))
        digit, rest = Expr(), remainder
        for level, bits in enumerate(DIGIT_LEVELS):
            unit = 1 << sum(DIGIT_LEVELS[level + 1:])
            part = self._digit_thresholds(f"div.digit{level}", rest, far_divisor, unit, bits)
            digit = digit + unit * part
            if level + 1 < len(DIGIT_LEVELS):
                rest = rest - unit * g.product(f"div.digit{level}_times_divisor", far_divisor, part)
        self.divide_traps = (self.flag_and("div.by_zero", uses, self.top_is_zero),
                             self.flag_and("div.overflow", self.is_op[Op.DIV_S],
                                           g.equals("div.int_min", self.second.value, SIGN),
                                           g.equals("div.minus_one", self.top.value, WORD - 1)))
        self.in_quotient = self.flag_and("div.in_quotient", uses, sum(phase_is[:QUOTIENT_BYTES], Expr()))
        return digit

    @cached_property
    def negative_operands(self) -> tuple[Expr, Expr]:
        """(second < 0, top < 0) for a signed division (both 0 for other ops): one layer, two units each."""
        is_signed = self.flag_where(datapath=Datapath.DIVIDE, signed=True)

        def negative(name: str, value: Expr) -> Expr:
            below = value - SIGN - WORD * (1 - is_signed)  # >= 0 only for a signed op's negative value
            return self.g.neurons(name, [(1, self.g.one, below + 1), (-1, self.g.one, below)], bounds=(0, 1))
        return negative("div.negative_a", self.second.value), negative("div.negative_d", self.top.value)

    def _digit_thresholds(self, name: str, x: Expr, divisor: Expr, unit: int, bits: int) -> Expr:
        """How many of unit * k * divisor (k = 1 .. 2^bits - 1) x has reached: ``bits`` bits of a quotient."""
        terms = []
        for k in range(1, 1 << bits):
            terms += [(1, self.g.one, x - k * unit * divisor + 1), (-1, self.g.one, x - k * unit * divisor)]
        return self.g.neurons(name, terms, bounds=(0, (1 << bits) - 1))

    @cached_property
    def column_byte(self) -> Expr:
        """Byte k of a product or of a division's result, at the token that writes result byte k.

        T_k = C_k + S_k + (carry of T_{k-1}), where S_k is column k of byte
        products, and the byte is T_k mod 256. Every way keeps T_k >= 0, by
        writing a negation as a complement plus one (-x = ~x + 1):
        mul: S = second x top; div: C = Q (the quotient of the magnitudes,
        written as q.XX bytes just before), or ~Q + 1 for a negative quotient;
        rem: A - Q * D = A + Q * ~D + Q (D as written: two's complement keeps
        the product right mod 2^32), or A + Q * D when the truncated quotient
        is negative. Column m of Q * ~D is 255 (q_0 + ... + q_m) - (Q x D)_m:
        the same products.

        The carry is never computed twice: result bytes 0..k-1 are already in
        the trace (this token and the two before it), so
        T_k = sum_{m<=k} 256^(m-k) (C_m + S_m) - sum_{m<k} 256^(m-k) o_m
        is linear in the products and those bytes; only T_k mod 256 needs a
        floor (docs/machine.md). The active way's C + S is selected first (one
        unit per way and column), then T_k (two units per byte: mul, div/rem).
        """
        g, phase_is = self.g, self.phase_is
        is_mul, is_div = self.op_flag(Op.MUL), self.op_flag(Op.DIV_S, Op.DIV_U)
        is_rem = self.op_flag(Op.REM_S, Op.REM_U)
        a, b = self.word_bytes(self.second.position, "second"), self.word_bytes(self.top.position, "top")
        # the quotient's bytes, read at its last scratch token (q3 q2 q1 q0: the back lookups hold them)
        quotient = self.word_bytes(g.t - self.phase + QUOTIENT_BYTES, "quotient")[::-1]

        def columns(x: list[Expr], name: str) -> list[Expr]:
            """Column m of x * top: its byte products (one unit each, bytes are >= 0) summed in one feature."""
            return [g.neurons(f"column.{name}_by_top{m}", [(1, x[i], b[m - i]) for i in range(m + 1)],
                              bounds=(0, (m + 1) * BYTE_MAX ** 2)) for m in range(VALUE_BYTES)]

        second_by_top, quotient_by_top = columns(a, "second"), columns(quotient, "quotient")
        quotient_by_complement = [BYTE_MAX * sum(quotient[:m + 1], Expr()) - quotient_by_top[m] + quotient[m]
                                  for m in range(VALUE_BYTES)]  # Q * ~D + Q, column m
        complement = [BYTE_MAX - quotient[m] + (1 if m == 0 else 0) for m in range(VALUE_BYTES)]  # ~Q + 1
        # the truncated quotient is negative when exactly one operand of a signed division is (one layer)
        negative_a, negative_d = self.negative_operands

        def when_negative_quotient(name: str, ops: Expr) -> Expr:
            return g.neurons(name, [(1, g.one, ops + negative_a - negative_d - 1),
                                    (1, g.one, ops + negative_d - negative_a - 1)], bounds=(0, 1))
        rem_adds = when_negative_quotient("column.rem_adds", is_rem)
        div_negates = when_negative_quotient("column.div_negates", is_div)
        ways = [  # (flag, C + S by column)
            (is_mul, second_by_top),
            (rem_adds, [a[m] + quotient_by_top[m] for m in range(VALUE_BYTES)]),
            (is_rem - rem_adds, [a[m] + quotient_by_complement[m] for m in range(VALUE_BYTES)]),
            (is_div - div_negates, quotient),
            (div_negates, complement),
        ]
        # first the active way's columns (0 for other ops), then the carries: two small sums, not one large
        selected = [g.neurons(f"column.selected{m}", [(1, column[m], flag) for flag, column in ways],
                              bounds=(0, COLUMN_SUM_LIMIT)) for m in range(VALUE_BYTES)]
        divides = is_rem + is_div
        written = [self.byte, self.byte_back1, self.byte_back2]  # result bytes k-1, k-2, k-3 at byte k
        terms = []
        for k in range(VALUE_BYTES):
            carried = sum((written[d - 1] * Fraction(1, BYTE_RANGE ** d) for d in range(1, k + 1)), Expr())
            total = sum((selected[m] * Fraction(1, BYTE_RANGE ** (k - m)) for m in range(k + 1)), Expr())
            # result byte k comes next: at phase k for mul, after the quotient bytes for div and rem
            terms += [(1, total - carried, phase_is[k] + is_mul - 1),
                      (1, total - carried, phase_is[QUOTIENT_BYTES + k] + divides - 1)]
        total = g.neurons("column.total", terms, bounds=(0, COLUMN_LIMIT - 1), exact=True)
        return total - BYTE_RANGE * floor_quotient(g, "column.carry", total, BYTE_RANGE, COLUMN_CARRY_LEVELS)

    def _bitcount(self, uses: Expr) -> Expr:
        """clz / ctz / popcnt of the top in byte 0, from per-byte counts (token tables) read by two heads.

        clz: 8 per zero byte above the highest nonzero one, plus that byte's
        leading zeros; ctz likewise from the lowest nonzero byte (a zero byte
        counts 8, so 0 gives 32); popcnt: the set bits of the top's bytes 0-1
        and 2-3 (each token knows its own and its predecessor's).
        """
        g, value = self.g, self.top.value
        b = self.word_bytes(self.top.position, "top")
        highest = sum((g.step(f"clz.above{k}", value - BYTE_RANGE ** k) for k in range(1, VALUE_BYTES)), Expr())
        lowest = sum((g.equals(f"ctz.zero_below{k}", sum((b[i] * BYTE_RANGE ** i for i in range(k)), Expr()), 0)
                      for k in range(1, VALUE_BYTES)), Expr())
        clz, ctz, popcnt = self.is_op[Op.CLZ], self.is_op[Op.CTZ], self.is_op[Op.POPCNT]
        deciding_byte = self.top_bytes + self.gate("clz.byte", clz, highest) + self.gate("ctz.byte", ctz, lowest)
        # popcnt reads its two pairs of bytes where the other two read the deciding byte
        first = g.select("bitcount.first", popcnt, self.top.position, deciding_byte)
        second = g.select("bitcount.second", popcnt, self.top.position - 2, deciding_byte)
        high_pairs, leading = g.lookup("bitcount.high", first, g.t, [self.pair_popcount, self.leading8], tie=UNIQUE)
        low_pairs, trailing = g.lookup("bitcount.low", second, g.t, [self.pair_popcount, self.trailing8], tie=UNIQUE)
        now = {op: self.flag_and(f"{op.value}_now", self.is_op[op], self.first_phase)
               for op in (Op.CLZ, Op.CTZ, Op.POPCNT)}
        return (self.gate("out.clz", now[Op.CLZ], BITS * (VALUE_BYTES - 1 - highest) + leading)
                + self.gate("out.ctz", now[Op.CTZ], BITS * lowest + trailing)
                + self.gate("out.popcnt", now[Op.POPCNT], low_pairs + high_pairs))

    def word_bytes(self, record_position: Expr, name: str) -> list[Expr]:
        """The four bytes (low first) of the value whose record token is at ``record_position``: two heads.

        A record token knows its value's bytes: its own and the three before it (the back lookups).
        """
        cache = self._word_bytes
        if name not in cache:
            g = self.g
            low = g.lookup(f"{name}.bytes01", record_position, g.t, [self.byte_back3, self.byte_back2], tie=UNIQUE)
            high = g.lookup(f"{name}.bytes23", record_position, g.t, [self.byte_back1, self.byte], tie=UNIQUE)
            cache[name] = [*low, *high]
        return cache[name]

    @cached_property
    def bit_windows(self) -> tuple[list[Expr], list[Expr], Expr]:
        """The bits of the two bytes the bitwise and shift datapaths read, and the shift's bits within a byte.

        Built once, when the first of the two datapaths asks, and shared.

        For and/or/xor: byte k of each operand. For a shift by c = 8q + r: the
        16-bit window of the shifted value's bytes whose bits land in result
        byte k (bytes outside the value read as zero, or 0xff for shr_s of a
        negative value; rotations wrap around).
        """
        g, phase = self.g, self.phase
        count_byte = self.operand_byte
        eighths = sum((g.step(f"count_eighths{m}", count_byte - 32 * m) for m in range(1, 8)), Expr())
        count = count_byte - 32 * eighths  # the shift count mod 32
        whole_bytes = sum((g.step(f"count_bytes{m}", count - 8 * m) for m in range(1, 4)), Expr())
        rest_bits = count - 8 * whole_bytes
        left = self.op_flag(*LEFT_SHIFTS)
        right = self.flag_where(datapath=Datapath.SHIFT) - left
        low_index = phase + g.product("right_bytes", whole_bytes, right) - g.product("left_bytes", whole_bytes + 1,
                                                                                        left)
        negative = g.step("value_negative", self.second.value - SIGN)
        fill_first = T.ZERO_FIRST_BYTE + (T.ONES_FIRST_BYTE - T.ZERO_FIRST_BYTE) * self.flag_and(
            "fills_ones", negative, self.is_op[ARITHMETIC_SHIFT])
        rotates = self.either("rotates", *(self.is_op[op] for op in ROTATIONS))
        bitwise = self.is_any("is_bitwise", datapath=Datapath.BITWISE)

        def window_byte(name: str, index: Expr, bitwise_position: Expr) -> list[Expr]:
            wrapped = index + 4 * g.step(f"{name}.below", -index - 1) - 4 * g.step(f"{name}.above", index - 4)
            inside = self.flag_and(f"{name}.inside", g.step(f"{name}.from0", index),
                                   g.step(f"{name}.to3", 3 - index))
            shifted_position = g.select(f"{name}.shifted", inside, self.second_bytes + index, fill_first)
            shifted_position = g.select(f"{name}.rotated", rotates, self.second_bytes + wrapped, shifted_position)
            position = g.select(f"{name}.position", bitwise, bitwise_position, shifted_position)
            bits = []
            for pair in range(0, BITS, 2):
                bits += g.lookup(f"{name}.bits{pair}", position, g.t, [self.bit[pair], self.bit[pair + 1]], tie=UNIQUE)
            return bits

        return (window_byte("window_low", low_index, self.deeper_operand_at),
                window_byte("window_high", low_index + 1, self.top_operand_at), rest_bits)

    # -- the token ---------------------------------------------------------------------------------------
    def _next_token(self, out_byte: Expr) -> None:
        g, ids, phase, taken = self.g, self.ids, self.phase, self.taken
        transfer = self.flag_where(body=Body.TARGET, datapath=Datapath.COPY) + taken
        writes_value = self.flag_where(body=Body.VALUE)
        # how many tokens come before the commit
        divides = self.flag_where(datapath=Datapath.DIVIDE)
        body_length = (self.by_row(lambda row: row.value_bytes, body=Body.VALUE) + QUOTIENT_BYTES * divides
                       + self.by_row(lambda row: row.width, body=Body.STORED)
                       + self.flag_where(body=Body.OUTPUT) + self.flag_where(body=Body.ERROR_OUTPUT)
                       + self.flag_where(body=Body.EXIT_STATUS) + TARGET_BYTES * transfer)
        in_body = g.step("in_body", body_length - 1 - phase)
        value_base = T.family_base("v") + (T.family_base("vc") - T.family_base("v")) * self.carry_out
        target_family = T.family_base("ph") + g.product("target_family", transfer, phase) * BYTE_RANGE
        family = (self.gate("family.value", writes_value, value_base)
                  + (T.family_base("q") - T.family_base("v")) * self.in_quotient
                  + self.flag_where(body=Body.STORED) * T.family_base("m")
                  + self.flag_where(body=Body.OUTPUT) * T.family_base("o")
                  + self.flag_where(body=Body.ERROR_OUTPUT) * T.family_base("e")
                  + self.flag_where(body=Body.EXIT_STATUS) * T.family_base("x")
                  + self.gate("family.target", transfer, target_family))
        commit = self.by_op({row.op: ids[row.commit.value] for row in OP_TABLE if row.commit is not None})
        commit = commit + (ids[Commit.BRANCH.value] - ids[Commit.POP.value]) * taken
        next_id = g.select("body_or_commit", in_body, family + out_byte, commit)

        exhausted = self._exhausted()
        by_zero, overflow = self.divide_traps
        trap_reason = (self.gate("trap.op", self.is_op[Op.TRAP], self.immediate)
                       + TrapReason.OUT_OF_BOUNDS_MEMORY * self.out_of_bounds
                       + TrapReason.CALL_STACK_EXHAUSTED * exhausted
                       + TrapReason.DIVIDE_BY_ZERO * by_zero + TrapReason.INTEGER_OVERFLOW * overflow)
        traps = self.is_op[Op.TRAP] + self.out_of_bounds + exhausted + by_zero + overflow
        trap_id = ids[T.TRAPS[0]] + self.clamp("trap_reason", trap_reason, 0, len(T.TRAPS) - 1)
        stops = self.flag_and("trap_now", self.first_phase, g.step("any_trap", traps - 1))
        next_id = g.select("unless_trap", stops, trap_id, next_id)
        halts = (self.flag_and("halt_now", self.first_phase, self.is_op[Op.HALT]) + self.is_trap_token
                 + self.is_exit_token)
        g.set_next_token_id(g.select("next_id", g.step("halts", halts - 1), ids[T.HALT], next_id))

    def _exhausted(self) -> Expr:
        """1 when this step's call or push would pass the call-depth, local-words or stack limit."""
        g = self.g
        calls = ops_where(record=Record.CALL)
        frame_words = (self.by_op({op: spec(op).frame for op in calls if spec(op).frame != STRIDE_FRAME})
                       + self.gate("stride_call_words", self.is_op[Op.CALL], self.stride))
        beyond = self.either("call_beyond_limits", g.step("depth_at_limit", self.depth - T.MAX_CALL_DEPTH),
                             g.step("locals_full", self.words_in_use + frame_words - T.LOCAL_WORDS - 1))
        too_deep = self.flag_and("call_too_deep", self.op_flag(*calls), beyond)
        grows_stack = self.op_flag(*(op for op in MACHINE_OPS if stack_effect(op) > 0))
        too_high = self.flag_and("stack_full", grows_stack, g.step("stack_at_limit", self.sp - T.STACK_LIMIT))
        return g.persist("exhausted", too_deep + too_high)


# -- where the program comes from ---------------------------------------------------------------------------


class ProgramView:
    """How the machine reads its program: the one place where universal and specialised machines differ."""

    def __init__(self, builder: _Builder):
        self.b = builder

    def parameters(self) -> tuple[Expr, Expr, Expr, Expr]:
        """(initial memory bytes, pages memory.grow may add, frame stride, position of the first input byte)."""
        raise NotImplementedError

    def fetch(self) -> tuple[Expr, Expr, Expr]:
        """(opcode, its square, immediate) of the instruction at the pc."""
        raise NotImplementedError

    def frame(self, frame_cleared: Expr) -> Expr:
        """The position where the current frame began (its call record); keeps what ``return`` needs."""
        raise NotImplementedError

    def note_global_read(self, found: Expr, reads_global: Expr) -> None:
        """Told whether a global read found a record (a specialised machine reads the initial value if not)."""

    def loaded_byte(self, stored: Expr, found: Expr) -> Expr:
        """The byte a load reads, given the newest stored byte at the address (meaningful only where
        ``found``) and whether there is one (``found`` is 1 or at most 0: use it as a relu's argument)."""
        raise NotImplementedError

    def source_positions(self) -> dict[Source, Expr]:
        """Positions of the program's own sources (immediate, target, return pc) in the sequence, if any."""
        return {}

    def direct_bytes(self) -> Expr:
        """Output-byte terms computed from the program itself rather than read from a position."""
        return Expr()


class PromptProgram(ProgramView):
    """The universal machine: the program is in the prompt and every part of it is read by position."""

    def parameters(self) -> tuple[Expr, Expr, Expr, Expr]:
        b, g = self.b, self.b.g

        def header(marker: str, hi: int) -> Expr:
            (value,) = g.lookup(f"header.{marker.strip('<>')}", T.header_value_position(marker), g.t,
                                [b.word_here], tie=UNIQUE)
            return b.clamp(f"{marker.strip('<>')}_param", value, 0, hi)

        limits = (header(T.MEMORY, T.MAX_MEMORY), header(T.GROW, T.MAX_PAGES), header(T.FRAME, T.LOCAL_WORDS))
        self.code_base = header(T.CODE, MAX_EXACT_TOKENS)
        return (*limits, header(T.INPUT, MAX_EXACT_TOKENS))

    def fetch(self) -> tuple[Expr, Expr, Expr]:
        b, g = self.b, self.b.g
        self.slot_position = self.code_base + T.SLOT * b.pc  # the op token of instruction pc
        immediate, opcode = g.lookup("fetch", self.slot_position + VALUE_BYTES, g.t, [b.word_here, b.slot_opcode],
                                     tie=UNIQUE)
        (square,) = g.lookup("fetch.square", self.slot_position, g.t, [b.opcode_square_here], tie=UNIQUE)
        return opcode, square, immediate

    def frame(self, frame_cleared: Expr) -> Expr:
        b, g = self.b, self.b.g
        return_slot_here = self.slot_position + 3  # at a call record: its immediate's bytes 2, 3 (return pc)
        frame_start, self.return_slot = b.record_lookup("frame", b.depth, b.call_key, [g.t, return_slot_here],
                                                        clear=frame_cleared)
        return frame_start

    def loaded_byte(self, stored: Expr, found: Expr) -> Expr:
        # never stored: 0 (the data records hold the initial bytes that are not)
        return self.b.g.neurons("loaded_byte", [(1, stored, found)], bounds=(0, BYTE_MAX))

    def source_positions(self) -> dict[Source, Expr]:
        slot_bytes, phase = self.slot_position + 1, self.b.phase
        return {Source.IMMEDIATE: slot_bytes + phase,
                Source.TARGET: slot_bytes + 1 - phase,  # high byte first
                Source.RETURN_PC: self.return_slot + 1 - phase}


class BakedTables(ProgramView):
    """A specialised machine: the program is in FFN tables indexed by the pc (machine/baked.py)."""

    def __init__(self, builder: _Builder, baked: BakedProgram):
        super().__init__(builder)
        self.baked = baked

    def parameters(self) -> tuple[Expr, Expr, Expr, Expr]:
        baked = self.baked  # constants of the weights
        return (Expr.of(baked.memory_limit), Expr.of(baked.growable_pages), Expr.of(baked.stride),
                Expr.of(SPECIALISED_INPUT_START))

    def fetch(self) -> tuple[Expr, Expr, Expr]:
        b = self.b
        opcode = b.table("opcode_at_pc", b.pc, self.baked.opcodes)
        self.immediate_bytes = [b.table(f"immediate.byte{k}", b.pc, self.baked.immediate_bytes[k])
                                for k in range(VALUE_BYTES)]
        square = b.g.product("opcode_at_pc_square", opcode, opcode)  # opcodes are >= 0
        return opcode, square, sum((self.immediate_bytes[k] * 256**k for k in range(VALUE_BYTES)), Expr())

    def frame(self, frame_cleared: Expr) -> Expr:
        b, g = self.b, self.b.g
        (frame_start,) = b.record_lookup("frame", b.depth, b.call_key, [g.t], clear=frame_cleared)
        # the call record carries its return pc's bytes (immediate bytes 3, 2)
        self.return_bytes = b.record_lookup("return_pc", b.depth, b.call_key, self.immediate_bytes[:1:-1],
                                            clear=frame_cleared)
        return frame_start

    def note_global_read(self, found: Expr, reads_global: Expr) -> None:
        self.global_unwritten = self.b.flag_and("global_unwritten", 1 - found, reads_global)

    def loaded_byte(self, stored: Expr, found: Expr) -> Expr:
        b = self.b  # never stored: the initial memory, baked
        initial = b.table("initial_memory", b.address_here, self.baked.memory)
        return b.g.neurons("loaded_byte", [(1, stored - initial, found), (1, initial, b.g.one)], bounds=(0, BYTE_MAX))

    def direct_bytes(self) -> Expr:
        """The immediate, target and return bytes from the instruction tables, and a global's initial value."""
        b, g, phase, immediate = self.b, self.b.g, self.b.phase, self.immediate_bytes
        copies_immediate = b.flag_where(datapath=Datapath.COPY, source=Source.IMMEDIATE)
        immediate_here = switch(g, "baked.immediate", phase, dict(enumerate(immediate)))
        target_here = switch(g, "baked.target", phase, {0: immediate[1], 1: immediate[0]})
        return_here = switch(g, "baked.return", phase, {0: self.return_bytes[0], 1: self.return_bytes[1]})
        initial = [b.table(f"initial_global.byte{k}", b.small_immediate, self.baked.global_bytes[k])
                   for k in range(VALUE_BYTES)]
        global_here = switch(g, "baked.global", phase, dict(enumerate(initial)))
        copies_target = b.flag_where(datapath=Datapath.COPY, source=Source.TARGET) + b.taken
        return (b.gate("out.immediate", copies_immediate, immediate_here)
                + b.gate("out.target", copies_target, target_here)
                + b.gate("out.return", b.flag_where(source=Source.RETURN_PC), return_here)
                + b.gate("out.initial_global", self.global_unwritten, global_here))
