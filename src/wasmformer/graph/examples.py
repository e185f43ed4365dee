"""Four small machines written in the graph DSL (used by ``make demo`` and the tests).

Each builder returns ``(graph, make_prompt)``: ``make_prompt(inputs)`` turns
plain Python inputs into prompt tokens; the graph's decoding loop then
generates the answer token by token.

The one rule that shapes every machine: a feature at token t may read
earlier tokens only through attention, and only features that do not depend
on that attention itself (the network has a fixed depth). So no value is
carried forward by a recurrence. State is recomputed at every token from the
tokens themselves: counts of past tokens (``count_before``), the newest token
with some key (``latest`` lookups), a token at a computed position
(``unique`` lookups keyed by t). A value the machine computes and needs again
later is written out as a token, whose embedding then carries it.

- ``counter_machine``: counts upward in fixed-width decimal.
- ``running_sum_machine``: prints the running sums of the prompt's digits.
- ``memory_machine``: a byte memory answering loads after stores.
- ``stack_machine``: a small stack machine executing the prompt's program.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Callable, Sequence

from wasmformer.graph.expr import UNIQUE, Expr, ExprLike
from wasmformer.graph.graph import Graph
from wasmformer.graph.patterns import decimal_digits, switch, thresholds_reached

Machine = tuple[Graph, Callable[..., list[str]]]

DIGITS = tuple(str(d) for d in range(10))
HEX_DIGITS = tuple(format(d, "x") for d in range(16))
DEFAULT_MAX_EXACT_TOKENS = 8192


def token_ids(graph: Graph) -> dict[str, int]:
    return {token: index for index, token in enumerate(graph.vocab)}


# -- (a) counter ---------------------------------------------------------------------------
def counter_machine(width: int = 3, max_exact_tokens: int = DEFAULT_MAX_EXACT_TOKENS) -> Machine:
    """Counts from a start value up to 10^width - 1 in zero-padded decimal, then halts.

    Prompt: ``, d d d ,`` (the start value between separators). Trace: the
    next numbers, each as ``width`` digit tokens and a ``,``; after the last
    (all nines) the halt token. Starting at 0 with width 3: 3,996 tokens.

    How: every separator fetches the digits of the number just written (unique
    lookups keyed by position) and adds one with a carry chain (``equals``);
    the digit tokens after it fetch those new digits from the newest separator
    (a ``latest`` lookup over tokens whose clear flag hides every non-separator)
    and pick theirs by their offset from it (``switch``).
    """
    vocab = [*DIGITS, ",", "halt"]
    graph = Graph(vocab, halt_token="halt", output_bytes={**{d: ord(d) for d in DIGITS}, ",": ord(" ")},
                  max_exact_tokens=max_exact_tokens, name="counter")
    ids = token_ids(graph)
    digit = graph.token_table("digit", {d: int(d) for d in DIGITS})
    is_separator = graph.token_table("is_separator", {",": 1})

    # At a separator: the digits of the number just written, ones first, and the next number.
    previous = [graph.lookup(f"previous.place{p}", graph.t - 1 - p, graph.t, [digit], tie=UNIQUE)[0]
                for p in range(width)]
    carries: list[Expr] = [Expr.of(1)]  # adding one: a carry into the ones place
    for p in range(width):
        carries.append(graph.equals(f"carry.place{p + 1}", previous[p] + carries[p], 10))
    following = [previous[p] + carries[p] - 10 * carries[p + 1] for p in range(width)]
    overflow = carries[width]

    # At a digit: the newest separator's position and next number (cleared tokens are not separators).
    not_separator = 1 - is_separator
    wanted = [graph.t] + following[: width - 1][::-1]  # position, then the digits still to emit, high first
    fetched = []
    for index in range(0, len(wanted), 2):
        fetched += graph.lookup(f"separator.{index // 2}", 0, 0, wanted[index:index + 2], clear=not_separator)
    offset = graph.persist("offset", graph.t - fetched[0])  # 0 at a separator, 1..width at its digits

    first = graph.select("first_digit", overflow, ids["halt"], following[width - 1])
    cases: dict[int, ExprLike] = {0: first, width: ids[","]}
    for o in range(1, width):
        cases[o] = fetched[o]  # the digit at place width-1-o, already fetched
    graph.set_next_token_id(switch(graph, "next_id", offset, cases))

    def make_prompt(start: int = 0) -> list[str]:
        if not 0 <= start < 10**width:
            raise ValueError(f"the counter starts at 0..{10**width - 1}, not {start}")
        return [","] + list(str(start).zfill(width)) + [","]

    return graph, make_prompt


# -- (b) running sum --------------------------------------------------------------------------
def running_sum_machine(max_exact_tokens: int = DEFAULT_MAX_EXACT_TOKENS) -> Machine:
    """Prints the running sums of the prompt's digits in decimal, comma-separated.

    Prompt: digits then ``=``. Trace: S_1 , S_2 , ... S_n , halt, where S_k is
    the sum of the first k digits. 500 random digits: about 2,500 tokens.

    How: input digits are those before any ``=`` (a count of ``=``); the sum
    up to position j is the count of earlier input digits with each bit set
    (``count_before``) weighted by 2^bit. The k-th separator fetches S_k from
    position k-1 (a unique lookup by position); every token computes the
    decimal digits of S_k (threshold neurons) and picks the one at
    (number of digits - 1 - digits already printed), the latter read from
    the position of the newest separator (a ``latest`` lookup).
    """
    vocab = [*DIGITS, "=", ",", "halt"]
    graph = Graph(vocab, halt_token="halt", output_bytes={**{d: ord(d) for d in DIGITS}, ",": ord(",")},
                  max_exact_tokens=max_exact_tokens, name="running_sum")
    ids = token_ids(graph)
    is_digit = graph.token_table("is_digit", {d: 1 for d in DIGITS})
    is_equals = graph.token_table("is_equals", {"=": 1})
    is_comma = graph.token_table("is_comma", {",": 1})
    is_separator = graph.token_table("is_separator", {"=": 1, ",": 1})
    bits = [graph.token_table(f"bit{b}", {d: 1 for d in DIGITS if int(d) >> b & 1}) for b in range(4)]

    equals_before, commas_before = graph.count_before("marks", [is_equals, is_comma])
    separators = equals_before + is_equals + commas_before + is_comma  # at or before t
    input_region = -(equals_before + is_equals)  # >= 0 exactly before the '='
    is_input = graph.step("is_input", input_region, is_digit)
    input_bits = [graph.step(f"input_bit{b}", input_region, bits[b]) for b in range(4)]
    low = graph.count_before("bits_low", input_bits[:2])
    high = graph.count_before("bits_high", input_bits[2:])
    counts = low + high
    prefix_sum = graph.persist("prefix_sum", sum((2**b * (counts[b] + input_bits[b]) for b in range(4)), Expr()))

    total, total_is_input = graph.lookup("sum_k", separators - 1, graph.t, [prefix_sum, is_input], tie=UNIQUE)
    (separator_at,) = graph.lookup("newest_separator", 1, is_separator, [graph.t])
    printed = graph.t - separator_at  # digits of the current sum already printed

    places = len(str(prefix_sum.bounds()[1]))
    digits = decimal_digits(graph, "sum", total, places)
    top_place = thresholds_reached(graph, "top_place", total, [10**p for p in range(1, places)])
    place = top_place - printed  # the place of the next digit; negative once all are printed
    digit_out = switch(graph, "digit_out", place, dict(enumerate(digits)))
    finished = graph.step("finished", -place - 1)  # place < 0
    stop = graph.step("stop", -total_is_input, is_separator)  # a separator past the last input
    digit_or_comma = graph.select("digit_or_comma", finished, ids[","], digit_out)
    graph.set_next_token_id(graph.select("next_id", stop, ids["halt"], digit_or_comma))

    def make_prompt(digits_in: Sequence[int]) -> list[str]:
        if any(not 0 <= d <= 9 for d in digits_in):
            raise ValueError("the running sum reads decimal digits 0..9")
        return [str(d) for d in digits_in] + ["="]

    return graph, make_prompt


# -- (c) byte memory ------------------------------------------------------------------------------
def memory_machine(max_exact_tokens: int = DEFAULT_MAX_EXACT_TOKENS) -> Machine:
    """A 256-byte memory: the prompt stores and loads bytes, the model answers the loads.

    Prompt: ``^`` then commands, then ``?``. ``S a a v v`` stores byte vv
    (hex) at address aa (hex); ``L a a`` loads address aa. Trace: for each
    load in order, the two hex digits of the byte it read and ``;``; then
    halt. A never-written address reads 00.

    How: the token closing a command knows its offset from the command token
    (a ``latest`` lookup keyed by "is a command") and reads the earlier
    nibbles by position. A ``latest`` lookup keyed by address, whose clear
    flag hides every token but store ends (and the ``^`` sentinel, key -1, so
    there is always a candidate), gives each load end the newest value stored
    there before it; a key mismatch means "never stored": the answer is 0.
    After ``?`` the k-th answer is fetched from the k-th load end (a
    ``unique`` lookup keyed by load index, with a clear flag as well).
    """
    commands = ["S", "L", "?", ";", "^"]
    vocab = [*HEX_DIGITS, *commands, "halt"]
    graph = Graph(vocab, halt_token="halt", output_bytes={**{h: ord(h) for h in HEX_DIGITS}, ";": ord(" ")},
                  max_exact_tokens=max_exact_tokens, name="memory")
    ids = token_ids(graph)
    nibble = graph.token_table("nibble", {h: int(h, 16) for h in HEX_DIGITS})
    is_command = graph.token_table("is_command", {c: 1 for c in commands})
    command_kind = graph.token_table("command_kind", {"S": 1, "L": 2, "?": 3, ";": 3})
    is_begin = graph.token_table("is_begin", {"^": 1})
    is_answer_start = graph.token_table("is_answer_start", {"?": 1, ";": 1})
    is_semicolon = graph.token_table("is_semicolon", {";": 1})

    command_at, kind = graph.lookup("command", 1, is_command, [graph.t, command_kind])
    offset = graph.t - command_at
    (nibble_before,) = graph.lookup("nibble_back1", graph.t - 1, graph.t, [nibble], tie=UNIQUE)
    (nibble_3_before,) = graph.lookup("nibble_back3", graph.t - 3, graph.t, [nibble], tie=UNIQUE)
    (nibble_2_before,) = graph.lookup("nibble_back2", graph.t - 2, graph.t, [nibble], tie=UNIQUE)
    byte_here = 16 * nibble_before + nibble  # a load's address, or a store's value, at their last token

    store_end = graph.equals("store_end", offset, 4, graph.equals("in_store", kind, 1))
    load_end = graph.equals("load_end", offset, 2, graph.equals("in_load", kind, 2))
    address_key = graph.select("address_key", store_end, 16 * nibble_3_before + nibble_2_before, -1)
    holds_byte = graph.select("holds_byte", is_begin, 1, store_end)  # store ends and the sentinel
    stored, stored_at = graph.lookup("memory", byte_here, address_key, [byte_here, address_key],
                                     clear=1 - holds_byte)
    found = graph.equals("found", stored_at - byte_here, 0)
    loaded = graph.product("loaded", stored, found)  # 0 when the address was never stored

    loads_before, answers_before = graph.count_before("progress", [load_end, is_semicolon])
    load_key = graph.select("load_key", load_end, loads_before, -1)
    answer_index = answers_before + is_semicolon
    holds_answer = graph.select("holds_answer", is_begin, 1, load_end)  # load ends and the sentinel
    answer, answer_key = graph.lookup("answer", answer_index, load_key, [loaded, load_key],
                                      clear=1 - holds_answer, tie=UNIQUE)
    has_answer = graph.equals("has_answer", answer_key - answer_index, 0)
    high = thresholds_reached(graph, "answer_high", answer, [16 * k for k in range(1, 16)])
    emitted = switch(graph, "emitted", offset, {0: high, 1: answer - 16 * high, 2: ids[";"]})
    stop = graph.step("stop", -has_answer, is_answer_start)
    graph.set_next_token_id(graph.select("next_id", stop, ids["halt"], emitted))

    def make_prompt(operations: Sequence[tuple]) -> list[str]:
        """operations: ("store", address, value) or ("load", address), bytes 0..255."""
        tokens = ["^"]
        for operation in operations:
            if operation[0] == "store":
                tokens += ["S", *_hex_byte(operation[1]), *_hex_byte(operation[2])]
            elif operation[0] == "load":
                tokens += ["L", *_hex_byte(operation[1])]
            else:
                raise ValueError(f"unknown memory operation {operation!r}")
        return tokens + ["?"]

    return graph, make_prompt


def _hex_byte(value: int) -> list[str]:
    if not 0 <= value <= 255:
        raise ValueError(f"{value} is not a byte")
    return list(format(value, "02x"))


# -- (d) stack machine ---------------------------------------------------------------------------
STACK_OPS = ("add", "sub", "dup", "pop", "print")
OP_CODES = MappingProxyType({"push": 1, "add": 2, "sub": 3, "dup": 4, "pop": 5, "print": 6})  # 0: no instruction


def stack_machine(max_exact_tokens: int = DEFAULT_MAX_EXACT_TOKENS) -> Machine:
    """Executes a stack program given in the prompt; values are bytes (add/sub wrap mod 256).

    Instructions: ``push0``..``push9``, ``add`` (second + top), ``sub``
    (second - top), ``dup``, ``pop``, ``print`` (top in three decimal digits
    and a newline; the stack is unchanged). Prompt: ``^``, the program,
    ``run``. Trace: one token per instruction, the new top of the stack as a
    value token ``v0``..``v255`` (for print: ``d d d nl``), then halt.

    How: value tokens and ``nl`` *commit* an instruction. The program counter
    is the number of commits (``count_before``); each commit fetches the
    instruction it executed (by position) to learn its depth change, and the
    depth is (pushes - pops) as a ``count_before`` difference. A value token
    writes the stack slot at its depth; the top and second slots are ``latest``
    lookups keyed by depth (clear flag: only value tokens and the ``^``
    sentinel, depth 0 value 0, are candidates). Written top-down with
    placeholders: the execution part first, the bookkeeping it reads after.
    """
    pushes = [f"push{k}" for k in range(10)]
    values = [f"v{v}" for v in range(256)]
    vocab = [*pushes, *STACK_OPS, *values, *DIGITS, "nl", "^", "run", "halt"]
    graph = Graph(vocab, halt_token="halt", output_bytes={**{d: ord(d) for d in DIGITS}, "nl": ord("\n")},
                  max_exact_tokens=max_exact_tokens, name="stack")
    ids = token_ids(graph)
    value = graph.token_table("value", {f"v{v}": v for v in range(1, 256)})
    is_commit = graph.token_table("is_commit", {**{v: 1 for v in values}, "nl": 1})
    holds_slot = graph.token_table("holds_slot", {**{v: 1 for v in values}, "^": 1})  # value tokens, sentinel
    commit_or_run = graph.token_table("commit_or_run", {**{v: 1 for v in values}, "nl": 1, "run": 1})
    op_code = graph.token_table("op_code", {**{p: OP_CODES["push"] for p in pushes},
                                            **{op: OP_CODES[op] for op in STACK_OPS}})
    push_value = graph.token_table("push_value", {f"push{k}": k for k in range(1, 10)})
    grows = graph.token_table("grows", {**{p: 1 for p in pushes}, "dup": 1})
    shrinks = graph.token_table("shrinks", {"add": 1, "sub": 1, "pop": 1})

    last = max_exact_tokens
    pc = graph.placeholder("pc", 0, last)  # instructions executed up to and including this token
    depth = graph.placeholder("depth", -last, last)  # stack depth after this token

    # -- execution: read the next instruction and the stack, say what comes next --
    next_op, next_push = graph.lookup("next_instruction", pc + 1, graph.t, [op_code, push_value], tie=UNIQUE)
    (top,) = graph.lookup("top", depth, depth, [value], clear=1 - holds_slot)
    (second,) = graph.lookup("second", depth - 1, depth, [value], clear=1 - holds_slot)
    add_wraps = graph.step("add_wraps", second + top - 256)
    sub_fits = graph.step("sub_fits", second - top)
    new_top = switch(graph, "new_top", next_op, {
        OP_CODES["push"]: next_push,
        OP_CODES["add"]: second + top - 256 * add_wraps,
        OP_CODES["sub"]: second - top + 256 - 256 * sub_fits,
        OP_CODES["dup"]: top,
        OP_CODES["pop"]: second,
    })
    (commit_at,) = graph.lookup("newest_commit", 1, commit_or_run, [graph.t])
    printed = graph.t - commit_at  # print digits already written for the current instruction
    hundreds = thresholds_reached(graph, "hundreds", top, [100, 200])
    tens = thresholds_reached(graph, "tens", top - 100 * hundreds, [10 * k for k in range(1, 10)])
    ones = top - 100 * hundreds - 10 * tens
    print_id = switch(graph, "print_id", printed, {0: ids["0"] + hundreds, 1: ids["0"] + tens,
                                                   2: ids["0"] + ones, 3: ids["nl"]})
    is_print = graph.equals("is_print", next_op, OP_CODES["print"])
    finished = graph.equals("finished", next_op, 0)  # the token after the program: 'run'
    emitted = graph.select("emitted", is_print, print_id, ids["v0"] + new_top)
    graph.set_next_token_id(graph.select("next_id", finished, ids["halt"], emitted))

    # -- bookkeeping: program counter and depth from counts of committed instructions --
    (commits_before,) = graph.count_before("commits", [is_commit])
    graph.define(pc, graph.persist("pc_here", commits_before + is_commit))
    executed_grows, executed_shrinks = graph.lookup("executed", pc, graph.t, [grows, shrinks], tie=UNIQUE)
    grew = graph.product("grew", is_commit, executed_grows)
    shrank = graph.product("shrank", is_commit, executed_shrinks)
    grew_before, shrank_before = graph.count_before("depth_moves", [grew, shrank])
    graph.define(depth, graph.persist("depth_here", grew_before - shrank_before + grew - shrank))

    def make_prompt(program: Sequence[str]) -> list[str]:
        unknown = [op for op in program if op not in pushes and op not in STACK_OPS]
        if unknown:
            raise ValueError(f"unknown stack instruction {unknown[0]!r}")
        return ["^", *program, "run"]

    return graph, make_prompt


def random_stack_program(length: int, seed: int = 0) -> list[str]:
    """A program that never reads below the stack bottom, with a mix of every instruction."""
    rng = random.Random(seed)
    program, depth = [], 0
    while len(program) < length:
        choices = [f"push{rng.randrange(10)}"]
        if depth >= 1:
            choices += ["dup", "pop", "print"]
        if depth >= 2:
            choices += ["add", "sub", "add", "sub"]
        op = rng.choice(choices)
        depth += {"dup": 1, "pop": -1, "add": -1, "sub": -1, "print": 0}.get(op, 1)
        program.append(op)
    return program
