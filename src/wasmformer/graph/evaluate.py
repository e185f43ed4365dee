"""The exact graph evaluator: the oracle for the compiler and every engine.

It computes what the compiled weights compute, but in exact arithmetic
(Python ints and Fractions), one token position at a time:

- every feature has one value per position t = 0, 1, 2, ...; nodes are
  evaluated in ``walk.topological_order``;
- a head looks at the tokens j <= t (the current one included) whose clear
  flag, evaluated at j, is 0; keys, values and clear flags of token j are the
  values computed at token j, so they are stored once and never recomputed;
- ``latest`` picks the candidate maximising (-(q - k_j)^2, j): the closest key,
  then the newest token; ``unique`` maximises -(q - k_j)^2 and averages exact
  ties; ``average`` is the mean over every candidate;
- the next token is the argmax of the logits, the lowest vocabulary index
  winning an exact tie.

Every value is checked against its feature's [lo, hi] and, for exact features,
for integrality: a wrong bound or a broken graph stops here, with the feature
and position named, instead of becoming a silently wrong weight.

Per-token cost does not grow with t for the usual graphs: lookups index past
tokens by key in dicts (with a sorted key list for closest-key queries), means
keep running sums.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

from wasmformer.graph.expr import (
    AVERAGE,
    LATEST,
    Attention,
    Expr,
    Feature,
    GraphError,
    HeadOutput,
    Neurons,
    Number,
    Positional,
    TokenTable,
)
from wasmformer.graph.walk import is_placeholder, topological_order


class EvaluationError(RuntimeError):
    """A graph that has no defined answer at some position; the message names the node and t."""


def recency(t: int) -> float:
    """r(t) = 1/ln 2 - 1/ln(t+2): a float, so nothing exact may depend on it."""
    return 1.0 / math.log(2.0) - 1.0 / math.log(t + 2.0)


def normalize(value: Number) -> Number:
    """Integers stay Python ints (fast, and `exact` checks are trivial)."""
    if type(value) is Fraction and value.denominator == 1:
        return value.numerator
    return value


def compile_expr(expr: Expr) -> Callable[[dict], Number]:
    """expr as a function of the current values; the common short shapes get a direct closure."""
    constant, terms = expr.constant, tuple(expr.terms.items())
    if not terms:
        return lambda values: constant
    if len(terms) == 1:
        ((feature, c),) = terms
        if c == 1 and constant == 0:
            return lambda values: values[feature]
        return lambda values: normalize(c * values[feature] + constant)

    def evaluate(values: dict) -> Number:
        total = constant
        for feature, c in terms:
            total += c * values[feature]
        return normalize(total)

    return evaluate


def is_integer(value) -> bool:
    return isinstance(value, int) or (isinstance(value, Fraction) and value.denominator == 1)


# -- per-head indexes of the past ------------------------------------------------
class LatestIndex:
    """For each key, the newest uncleared token carrying it; keys also kept sorted.

    A token's clear flag and key never change after its position, so the newest
    uncleared token with key k is simply the last one added with key k.
    """

    def __init__(self) -> None:
        self.newest: dict[Number, tuple[int, tuple[Number, ...]]] = {}  # key -> (position, values)
        self.sorted_keys: list[Number] = []

    def add(self, key: Number, position: int, values: tuple[Number, ...]) -> None:
        if key not in self.newest:
            insort(self.sorted_keys, key)
        self.newest[key] = (position, values)

    def query(self, q: Number) -> tuple[Number, ...] | None:
        if q in self.newest:
            return self.newest[q][1]
        keys = nearest_keys(self.sorted_keys, q)
        if not keys:
            return None
        # Equidistant keys on both sides tie on the key score: the newer token wins.
        best = max(keys, key=lambda k: self.newest[k][0])
        return self.newest[best][1]


class UniqueIndex:
    """For each key, how many uncleared tokens carry it and the sums of their values."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.totals: dict[Number, list] = {}  # key -> [count, sum of value 0, sum of value 1]
        self.sorted_keys: list[Number] = []

    def add(self, key: Number, position: int, values: tuple[Number, ...]) -> None:
        totals = self.totals.get(key)
        if totals is None:
            totals = self.totals[key] = [0] + [0] * self.width
            insort(self.sorted_keys, key)
        totals[0] += 1
        for slot, value in enumerate(values):
            totals[slot + 1] += value

    def query(self, q: Number) -> tuple[Number, ...] | None:
        keys = [q] if q in self.totals else nearest_keys(self.sorted_keys, q)
        if not keys:
            return None
        # Every token at the best distance ties exactly: the softmax averages them all.
        count = sum(self.totals[k][0] for k in keys)
        sums = [sum(self.totals[k][slot + 1] for k in keys) for slot in range(self.width)]
        return tuple(normalize(Fraction(s, count)) for s in sums)


class MeanIndex:
    """Running count and sums of the values of every uncleared token."""

    def __init__(self, width: int) -> None:
        self.count = 0
        self.sums = [0] * width

    def add(self, key: Number, position: int, values: tuple[Number, ...]) -> None:
        self.count += 1
        for slot, value in enumerate(values):
            self.sums[slot] += value

    def query(self, q: Number) -> tuple[Number, ...] | None:
        if self.count == 0:
            return None
        return tuple(normalize(Fraction(s, self.count)) for s in self.sums)


def nearest_keys(sorted_keys: list[Number], q: Number) -> list[Number]:
    """The keys at the smallest distance from q (two when q lies exactly between them)."""
    i = bisect_left(sorted_keys, q)
    around = sorted_keys[max(0, i - 1): i + 1]
    if not around:
        return []
    best = min(abs(q - k) for k in around)
    return [k for k in around if abs(q - k) == best]


def new_index(head: Attention):
    if head.tie == LATEST:
        return LatestIndex()
    if head.tie == AVERAGE:
        return MeanIndex(len(head.values))
    return UniqueIndex(len(head.values))


# -- the evaluator ------------------------------------------------------------------
@dataclass
class EvalResult:
    trace: list[str]  # generated tokens, halt included when halted
    halted: bool
    output: bytes = b""  # output_bytes of the trace's output tokens


Values = dict  # Feature | Attention -> value (a tuple of values for a head)


class Evaluator:
    """Feed tokens one at a time with ``step``; read any position's features with ``values``."""

    def __init__(self, graph):
        if graph.logits is None:
            raise GraphError(f"graph {graph.name!r} has no output: call set_logits or set_next_token_id")
        self.graph = graph
        self.tokens: list[str] = []
        self._token_ids = {token: index for index, token in enumerate(graph.vocab)}
        self._indexes = {id(head): new_index(head) for head in graph.heads}
        # every vocabulary token in order (absent ones score 0): (token, constant, ((feature, coefficient), ...))
        self._scores = [(token, score.constant, tuple(score.terms.items()))
                        for token, score in ((v, graph.logits.get(v, Expr())) for v in graph.vocab)]
        # (node, rule, checked): features are checked against their bounds, heads are not features
        self._plan = [(node, self._rule(node), isinstance(node, Feature)) for node in topological_order(graph)]
        self._history: list[Values] = []
        self.last_logits: dict[str, Number] = {}  # token -> score at the newest position
        self._failure: EvaluationError | None = None

    @property
    def position(self) -> int:
        """The position the next fed token will take."""
        return len(self.tokens)

    # -- public API ------------------------------------------------------------------
    def step(self, token: str) -> str:
        """Feed ``token`` at the next position; return the predicted next token."""
        t = self.position
        if self._failure is not None:  # heads may hold part of the failed position: no way back
            raise EvaluationError(f"graph {self.graph.name!r}: evaluation already failed: {self._failure}")
        if token not in self._token_ids:
            raise EvaluationError(f"graph {self.graph.name!r}: token {token!r} at t={t} is not in the vocabulary")
        if t >= self.graph.max_exact_tokens:
            raise EvaluationError(
                f"graph {self.graph.name!r}: position {t} lies beyond max_exact_tokens = {self.graph.max_exact_tokens}"
            )
        values: Values = {}
        try:
            for node, rule, checked in self._plan:
                value = values[node] = rule(values, token, t)
                if checked:
                    check_value(node, value, t)
        except EvaluationError as error:
            self._failure = error
            raise
        self.tokens.append(token)
        self._history.append(values)
        return self._argmax(values)

    def values(self, t: int) -> dict[str, Number]:
        """Feature name -> value at position t (heads themselves are not features)."""
        return {node.name: value for node, value in self._history[t].items() if isinstance(node, Feature)}

    # -- one rule per kind of node -----------------------------------------------------
    def _rule(self, node) -> Callable:
        if isinstance(node, Attention):
            return self._attention_rule(node)
        if isinstance(node, TokenTable):
            rule = lambda values, token, t: node.table.get(token, 0)  # noqa: E731
        elif isinstance(node, Positional):
            rule = _positional_rule(node)
        elif isinstance(node, Neurons):
            rule = _neurons_rule(node)
        elif isinstance(node, HeadOutput):
            head, slot = node.head, node.slot
            rule = lambda values, token, t: values[head][slot]  # noqa: E731
        elif is_placeholder(node):
            definition = compile_expr(node.definition)
            rule = lambda values, token, t: definition(values)  # noqa: E731
        else:
            raise GraphError(f"{node.describe()}: the evaluator does not know this kind of feature")
        return rule

    def _attention_rule(self, head: Attention) -> Callable:
        index = self._indexes[id(head)]
        clear = compile_expr(head.clear if head.clear is not None else Expr())
        query, key = compile_expr(head.query), compile_expr(head.key)
        key_square = compile_expr(head.key_square) if head.key_square is not None else None
        value_rules = [compile_expr(v) for v in head.values]

        def attend(values: Values, token: str, t: int) -> tuple[Number, ...]:
            cleared = clear(values)
            if cleared not in (0, 1):
                raise EvaluationError(f"{head.describe()}: clear flag is {cleared} at t={t}, not 0 or 1")
            if not cleared:  # the current token is a candidate too
                k = key(values)
                if key_square is not None and key_square(values) != k * k:  # the weights score with it
                    raise EvaluationError(f"{head.describe()}: its key square is {key_square(values)} at t={t}, "
                                          f"not the square of its key {k}")
                index.add(k, t, tuple(rule(values) for rule in value_rules))
            result = index.query(query(values))
            if result is None:
                raise EvaluationError(
                    f"{head.describe()}: every token up to t={t} is cleared, so the head has no defined answer"
                )
            return result

        return attend

    def _argmax(self, values: Values) -> str:
        """Scores are exact integers (set_logits demands it); the lowest vocabulary index wins a tie."""
        scores: dict[str, Number] = {}
        best_token, best_score = None, None
        for token, constant, terms in self._scores:  # vocabulary order
            score = constant
            for feature, coefficient in terms:
                score += coefficient * values[feature]
            scores[token] = score
            if best_score is None or score > best_score:
                best_token, best_score = token, score
        self.last_logits = scores
        return best_token


def _positional_rule(feature: Positional) -> Callable:
    if feature.kind == "t":
        return lambda values, token, t: t
    if feature.kind == "t2":
        return lambda values, token, t: t * t
    if feature.kind == "recency":
        return lambda values, token, t: recency(t)
    raise GraphError(f"{feature.describe()}: unknown positional kind {feature.kind!r}")


def _neurons_rule(feature: Neurons) -> Callable:
    """sum(c * a * relu(b)); units often differ only by a constant (steps, thresholds, equals),
    so each distinct linear part is evaluated once per token and the constants added after."""
    parts: dict[tuple, int] = {}
    linear: list[Callable] = []

    def part(expr: Expr) -> tuple[int, Number]:
        shape = tuple((id(f), c) for f, c in expr.terms.items())
        if shape not in parts:
            parts[shape] = len(linear)
            linear.append(compile_expr(Expr(expr.terms)))
        return parts[shape], expr.constant

    units = [(term.coefficient, *part(term.a), *part(term.b)) for term in feature.terms]

    def gated_sum(values: Values, token: str, t: int) -> Number:
        base = [evaluate(values) for evaluate in linear]
        total = 0
        for coefficient, a, a_constant, b, b_constant in units:
            gate = base[b] + b_constant
            if gate > 0:  # relu(b) = 0 otherwise
                total += coefficient * (base[a] + a_constant) * gate
        return normalize(total)

    return gated_sum


def check_value(feature: Feature, value: Number, t: int) -> None:
    """Bounds and exactness are promises the compiler relies on: a broken one stops the run here."""
    if not feature.lo <= value <= feature.hi:
        raise EvaluationError(
            f"{feature.describe()}: value {value} at t={t} lies outside its bounds [{feature.lo}, {feature.hi}]"
        )
    if feature.exact and not is_integer(value):
        raise EvaluationError(f"{feature.describe()}: value {value} at t={t} is not an integer, but it is marked exact")


# -- the decoding loop -----------------------------------------------------------------
def run(graph, prompt: Sequence[str], max_new_tokens: int | None) -> EvalResult:
    """The decoding loop of docs/model-format.md: feed the prompt, then append argmax tokens until halt or the limit.

    Mirrors ``engines.base.generate``: the halt token (or the last token when
    the limit is reached) is appended to the trace but never fed.
    """
    if not prompt:
        raise EvaluationError(f"graph {graph.name!r}: the prompt is empty")
    evaluator = Evaluator(graph)
    for token in prompt[:-1]:
        evaluator.step(token)
    next_token = evaluator.step(prompt[-1])
    trace: list[str] = []
    while True:
        trace.append(next_token)
        if next_token == graph.halt_token:
            break
        if max_new_tokens is not None and len(trace) >= max_new_tokens:
            break
        next_token = evaluator.step(next_token)
    halted = trace[-1] == graph.halt_token
    output = bytes(graph.output_bytes[token] for token in trace if token in graph.output_bytes)
    return EvalResult(trace=trace, halted=halted, output=output)
