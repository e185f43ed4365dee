"""The Graph: a program for the append-only lookup machine, built by calling methods.

A graph is an object you create and pass around (no module-level state). Its
primitives (docs/dsl.md):

- linear expressions over features (free);
- gated neurons ``a * relu(b)`` (one FFN unit each) and what is built from them:
  relu, step, exact product, equality, select, persist;
- lookups: a 2-D attention head fetching up to two values from the newest
  earlier token whose key equals the query (``latest``), from the single token
  with that key (``unique``), or the mean over all tokens (``average``), with an
  optional clear flag hiding tokens;
- exact prefix counts built from a mean head, one neuron and a snapping lookup.

Checks that need only the node itself run at construction, so a mistake fails
at the line that made it, with the node's name in the message.
``wasmformer.graph.validate`` checks the whole graph (cycles, horizon).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from wasmformer.graph.expr import (
    AVERAGE,
    LATEST,
    UNIQUE,
    Attention,
    Expr,
    ExprLike,
    Feature,
    GatedTerm,
    GraphError,
    HeadOutput,
    Neurons,
    Number,
    Positional,
    TokenTable,
)
from wasmformer.graph.precision import EXACT_INTEGER_LIMIT


class Placeholder(Feature):
    """A name used before its definition (``Graph.define`` binds it); lets graphs be written top-down."""

    definition: Expr | None = None


class Graph:
    def __init__(
        self,
        vocab: Sequence[str],
        *,
        halt_token: str,
        output_bytes: dict[str, int] | None = None,
        max_exact_tokens: int = 1 << 20,
        name: str = "graph",
    ):
        self.vocab = list(vocab)
        if len(set(self.vocab)) != len(self.vocab):
            raise GraphError(f"graph {name!r}: the vocabulary has duplicate tokens")
        for token in self.vocab:
            if not token or any(ch.isspace() for ch in token):
                raise GraphError(f"graph {name!r}: token {token!r} is empty or contains whitespace")
        if halt_token not in self.vocab:
            raise GraphError(f"graph {name!r}: halt token {halt_token!r} is not in the vocabulary")
        self.halt_token = halt_token
        self.output_bytes = dict(output_bytes or {})
        for token in self.output_bytes:
            if token not in self.vocab:
                raise GraphError(f"graph {name!r}: output byte token {token!r} is not in the vocabulary")
        if max_exact_tokens < 2:
            raise GraphError(f"graph {name!r}: max_exact_tokens must be at least 2")
        self.max_exact_tokens = max_exact_tokens
        self.name = name
        self.features: list[Feature] = []
        self.heads: list[Attention] = []
        self.logits: dict[str, Expr] | None = None
        self._names: set[str] = set()
        last = max_exact_tokens - 1
        self.one = self.token_table("one", {token: 1 for token in self.vocab})
        self.t = self._add(Positional("t", 0, last, kind="t")).expr()
        self.t2 = self._add(Positional("t2", 0, last * last, kind="t2")).expr()
        self.recency = self._add(Positional("recency", 0, 2, kind="recency", exact=False)).expr()

    # -- bookkeeping ----------------------------------------------------------
    def _add(self, feature: Feature) -> Feature:
        self._claim(feature.name)
        for bound in (feature.lo, feature.hi):
            if abs(bound) >= EXACT_INTEGER_LIMIT:
                raise GraphError(
                    f"{feature.describe()}: value bound {bound} is not below 2**53, so float64 cannot hold it exactly"
                )
        feature.index = len(self.features)
        self.features.append(feature)
        return feature

    def _claim(self, name: str) -> None:
        if not name or not isinstance(name, str):
            raise GraphError(f"graph {self.name!r}: every node needs a non-empty name")
        if name in self._names:
            raise GraphError(f"graph {self.name!r}: the name {name!r} is used twice")
        self._names.add(name)

    def _own(self, value: ExprLike, where: str) -> Expr:
        expr = Expr.of(value)
        for feature in expr.features:
            if feature.index < 0 or feature.index >= len(self.features) or self.features[feature.index] is not feature:
                raise GraphError(f"{where}: uses {feature.describe()}, which belongs to another graph")
        return expr

    # -- inputs ----------------------------------------------------------------
    def token_table(self, name: str, table: dict[str, int]) -> Expr:
        """A feature whose value depends only on the token id (absent tokens: 0)."""
        for token, value in table.items():
            if token not in self.vocab:
                raise GraphError(f"token table {name!r}: unknown token {token!r}")
            if not isinstance(value, int):
                raise GraphError(f"token table {name!r}: value for {token!r} is {value!r}, not an int")
        values = [table.get(token, 0) for token in self.vocab]
        feature = TokenTable(name, min(values), max(values), table={k: v for k, v in table.items() if v})
        return self._add(feature).expr()

    def placeholder(self, name: str, lo: int, hi: int) -> Expr:
        """A value defined later with ``define`` (lo..hi bound it until then)."""
        return self._add(Placeholder(name, lo, hi)).expr()

    def define(self, placeholder: Expr, value: ExprLike) -> None:
        features = placeholder.features
        if len(features) != 1 or not isinstance(features[0], Placeholder):
            raise GraphError(f"define: {placeholder!r} is not a placeholder")
        target = features[0]
        if target.definition is not None:
            raise GraphError(f"placeholder {target.name!r} is defined twice")
        value = self._own(value, f"placeholder {target.name!r}")
        lo, hi = value.bounds()
        if lo < target.lo or hi > target.hi:
            raise GraphError(
                f"placeholder {target.name!r}: its definition ranges over [{lo}, {hi}], "
                f"outside the declared [{target.lo}, {target.hi}]"
            )
        target.exact = value.is_integer_valued()
        target.definition = value

    # -- FFN primitives ----------------------------------------------------------
    def neurons(
        self,
        name: str,
        terms: Sequence[tuple[Number, ExprLike, ExprLike]],
        *,
        bounds: tuple[Number, Number] | None = None,
        exact: bool | None = None,
    ) -> Expr:
        """sum(c * a * relu(b)): gated units computed in one FFN into one new feature.

        ``bounds`` may tighten the interval bound when the caller knows the
        exact range (e.g. a step is 0 or a); it must be a true bound.
        """
        where = f"neurons {name!r}"
        gated = [GatedTerm(c, self._own(a, where), self._own(b, where)) for c, a, b in terms]
        if not gated:
            raise GraphError(f"{where}: no terms")
        lo, hi = _neuron_bounds(gated) if bounds is None else bounds
        if exact is None:
            exact = all(t.a.is_integer_valued() and t.b.is_integer_valued() for t in gated) and all(
                Fraction(t.coefficient).denominator == 1 for t in gated
            )
        return self._add(Neurons(name, lo, hi, terms=gated, exact=exact)).expr()

    def relu(self, name: str, x: ExprLike) -> Expr:
        return self.neurons(name, [(1, self.one, x)])

    def persist(self, name: str, x: ExprLike) -> Expr:
        """Copy a linear expression into a fresh slot so the slots it reads can be freed: x * relu(1)."""
        x = self._own(x, f"persist {name!r}")
        return self.neurons(name, [(1, x, self.one)], bounds=x.bounds(), exact=x.is_integer_valued())

    def product(self, name: str, a: ExprLike, b: ExprLike) -> Expr:
        """The exact product a*b: one unit when b >= 0 is known, else a*relu(b) - a*relu(-b)."""
        a, b = self._own(a, f"product {name!r}"), self._own(b, f"product {name!r}")
        bounds = _interval_product(a.bounds(), b.bounds())
        exact = a.is_integer_valued() and b.is_integer_valued()
        if b.bounds()[0] >= 0:
            return self.neurons(name, [(1, a, b)], bounds=bounds, exact=exact)
        return self.neurons(name, [(1, a, b), (-1, a, -b)], bounds=bounds, exact=exact)

    def step(self, name: str, b: ExprLike, a: ExprLike = 1) -> Expr:
        """a * [b >= 0] for integer-valued b: a*relu(b+1) - a*relu(b)."""
        b = self._require_integer(b, f"step {name!r}", "its condition")
        a = self._own(a, f"step {name!r}")
        return self.neurons(name, [(1, a, b + 1), (-1, a, b)], bounds=_with_zero(a.bounds()), exact=a.is_integer_valued())

    def equals(self, name: str, x: ExprLike, value: int, a: ExprLike = 1) -> Expr:
        """a * [x == value] for integer-valued x: a*(relu(d+1) - 2 relu(d) + relu(d-1)), d = x - value."""
        d = self._require_integer(x, f"equals {name!r}", "its argument") - value
        a = self._own(a, f"equals {name!r}")
        terms = [(1, a, d + 1), (-2, a, d), (1, a, d - 1)]
        return self.neurons(name, terms, bounds=_with_zero(a.bounds()), exact=a.is_integer_valued())

    def select(self, name: str, condition: ExprLike, if_true: ExprLike, if_false: ExprLike) -> Expr:
        """condition ? if_true : if_false for a 0/1 condition: if_false + (if_true - if_false) * relu(condition).

        One unit; the result is a new feature, so ``if_false`` is folded in as a
        second unit (if_false * relu(1)) to keep the whole value in one slot.
        """
        where = f"select {name!r}"
        condition = self._require_flag(condition, where, "its condition")
        if_true, if_false = self._own(if_true, where), self._own(if_false, where)
        lo = min(if_true.bounds()[0], if_false.bounds()[0])
        hi = max(if_true.bounds()[1], if_false.bounds()[1])
        terms = [(1, if_true - if_false, condition), (1, if_false, self.one)]
        exact = if_true.is_integer_valued() and if_false.is_integer_valued()
        return self.neurons(name, terms, bounds=(lo, hi), exact=exact)

    # -- attention primitives ---------------------------------------------------
    def lookup(
        self,
        name: str,
        query: ExprLike,
        key: ExprLike,
        values: Sequence[ExprLike],
        *,
        clear: ExprLike | None = None,
        tie: str = LATEST,
        key_square: ExprLike | None = None,
    ) -> list[Expr]:
        """Fetch ``values`` (one or two) from the token j <= t whose key best matches ``query``.

        The head scores 2*q*k_j - k_j^2 = q^2 - (q - k_j)^2, which peaks at
        k_j == q and loses at least 1 for any other integer key. ``tie``:
        ``latest`` adds the position so the newest equal key wins; ``unique``
        promises keys never repeat among candidates (or accepts an average of
        exact ties). Tokens with ``clear`` == 1 are never chosen while any
        uncleared token exists. The current token is a candidate too.

        ``key_square``: k*k as an expression the caller already has (else a
        product unit makes it). It must equal k*k at every uncleared token;
        at cleared ones any value within k*k's bounds will do, since the clear
        penalty outweighs the whole score. Many heads can then share one square.
        """
        where = f"lookup {name!r}"
        if tie not in (LATEST, UNIQUE):
            raise GraphError(f"{where}: tie must be {LATEST!r} or {UNIQUE!r} (use graph.mean for averages)")
        query = self._require_integer(query, where, "its query")
        key = self._require_integer(key, where, "its key")
        if key_square is not None:
            key_square = self._require_integer(key_square, where, "its key square")
        return self._head(name, query, key, values, clear, tie, key_square)

    def mean(self, name: str, values: Sequence[ExprLike], *, clear: ExprLike | None = None) -> list[Expr]:
        """The mean of each value over the uncleared tokens j <= t (approximate: not an exact integer)."""
        zero = Expr()
        return self._head(name, zero, zero, values, clear, AVERAGE)

    def _head(self, name, query, key, values, clear, tie, key_square=None) -> list[Expr]:
        where = f"{tie} lookup {name!r}"
        self._claim(name)
        values = [self._own(v, where) for v in values]
        if not 1 <= len(values) <= 2:
            raise GraphError(f"{where}: a head carries one or two values, got {len(values)}")
        if clear is not None:
            clear = self._require_flag(clear, where, "its clear flag")
        head = Attention(name, query, key, values, clear, tie, index=len(self.heads))
        if tie != AVERAGE:
            head.key_square = key_square if key_square is not None else self._square(f"{name}.key_square", key)
        self.heads.append(head)
        for slot, value in enumerate(values):
            lo, hi = value.bounds()
            exact = tie != AVERAGE and value.is_integer_valued()
            output = HeadOutput(f"{name}.{slot}" if len(values) > 1 else name, lo, hi, head=head, slot=slot, exact=exact)
            if tie == AVERAGE:
                output.lo, output.hi = Fraction(lo), Fraction(hi)
            head.outputs.append(self._add_output(output))
        return [output.expr() for output in head.outputs]

    def _add_output(self, output: HeadOutput) -> HeadOutput:
        if output.name in self._names and output.name == output.head.name:
            output.index = len(self.features)  # the head already claimed its own name
            self.features.append(output)
            return output
        return self._add(output)

    def _square(self, name: str, key: Expr) -> Expr:
        """k*k as a linear expression: free for token tables and for a*t+c; else a product unit."""
        kinds = {type(f) for f in key.features}
        if kinds <= {TokenTable}:
            return self._square_table(name, key)
        if all(isinstance(f, Positional) and f.kind == "t" for f in key.features):
            a = key.terms[key.features[0]] if key.features else 0
            c = key.constant
            return a * a * self.t2 + 2 * a * c * self.t + c * c
        return self.product(name, key, key)

    def _square_table(self, name: str, key: Expr) -> Expr:
        table = {}
        for token in self.vocab:
            value = key.constant + sum(c * f.table.get(token, 0) for f, c in key.terms.items())
            table[token] = int(value * value)
        return self.token_table(name, table)

    def count_before(self, name: str, indicators: Sequence[ExprLike]) -> list[Expr]:
        """Exact counts: for each 0/1 indicator (one or two), how many tokens j < t had it set.

        A mean head gives mean_j<=t(x_j); one unit multiplies by t+1; subtracting
        the current token's x_t leaves the count over earlier tokens, an
        approximate integer in [0, t]; a ``unique`` lookup keyed by position
        then snaps it to the exact integer (the position it names).
        """
        where = f"count {name!r}"
        flags = [self._require_flag(x, where, "an indicator") for x in indicators]
        return self._snapped_sums(name, flags, 0)

    def balance_before(self, name: str, pairs: Sequence[tuple[ExprLike, ExprLike]]) -> list[Expr]:
        """Exact running balances: for each pair (one or two) of 0/1 indicators (up, down), the sum over tokens
        j < t of up_j - down_j, as count_before does it. The caller promises every balance stays in [0, t]
        (calls minus returns, say): the snap can only name a position."""
        where = f"balance {name!r}"
        differences = [self._require_flag(up, where, "an indicator") - self._require_flag(down, where, "an indicator")
                       for up, down in pairs]
        return self._snapped_sums(name, differences, -self.max_exact_tokens)

    def _snapped_sums(self, name: str, indicators: list[Expr], lowest: int) -> list[Expr]:
        means = self.mean(f"{name}.mean", indicators)
        sums = []
        for index, (indicator, mean) in enumerate(zip(indicators, means)):
            label = f"{name}.{index}" if len(indicators) > 1 else name
            scaled = self.neurons(
                f"{label}.scaled", [(1, mean, self.t + 1)], bounds=(lowest, self.max_exact_tokens), exact=False
            )
            approximate = scaled - indicator
            snapped = self._head(f"{label}.snap", approximate, self.t, [self.t], None, UNIQUE)
            sums.append(snapped[0])
        return sums

    # -- output -----------------------------------------------------------------
    def set_logits(self, logits: dict[str, ExprLike]) -> None:
        """The next token is the argmax over tokens of these linear scores (absent tokens score 0)."""
        if self.logits is not None:
            raise GraphError(f"graph {self.name!r}: the output is set twice")
        result = {}
        for token, score in logits.items():
            if token not in self.vocab:
                raise GraphError(f"output: unknown token {token!r}")
            result[token] = self._require_integer(score, "output", f"the score of {token!r}")
        self.logits = result

    def set_next_token_id(self, token_id: ExprLike) -> None:
        """The next token is the one whose vocabulary index equals ``token_id``: score_v = 2*v*id - v^2."""
        token_id = self._require_integer(token_id, "output", "the next token id")
        self.set_logits({token: 2 * v * token_id - v * v for v, token in enumerate(self.vocab)})

    # -- checks -------------------------------------------------------------------
    def _require_integer(self, value: ExprLike, where: str, what: str) -> Expr:
        expr = self._own(value, where)
        if not expr.is_integer_valued():
            raise GraphError(f"{where}: {what} ({expr!r}) is not an exact integer at every token")
        return expr

    def _require_flag(self, value: ExprLike, where: str, what: str) -> Expr:
        expr = self._require_integer(value, where, what)
        lo, hi = expr.bounds()
        if lo < 0 or hi > 1:
            raise GraphError(f"{where}: {what} must be 0 or 1, but ranges over [{lo}, {hi}]")
        return expr

    # -- introspection --------------------------------------------------------------
    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def summary(self) -> dict:
        neurons = [f for f in self.features if isinstance(f, Neurons)]
        return {
            "features": len(self.features),
            "heads": len(self.heads),
            "ffn_units": sum(len(n.terms) for n in neurons),
            "vocab": len(self.vocab),
        }


def _interval_product(a: tuple[Number, Number], b: tuple[Number, Number]) -> tuple[Number, Number]:
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


def _with_zero(bounds: tuple[Number, Number]) -> tuple[Number, Number]:
    return min(0, bounds[0]), max(0, bounds[1])


def _neuron_bounds(terms: list[GatedTerm]) -> tuple[Number, Number]:
    lo = hi = 0
    for term in terms:
        b_lo, b_hi = term.b.bounds()
        relu = (max(0, b_lo), max(0, b_hi))
        p_lo, p_hi = _interval_product(term.a.bounds(), relu)
        c_lo, c_hi = sorted((term.coefficient * p_lo, term.coefficient * p_hi))
        lo, hi = lo + c_lo, hi + c_hi
    return lo, hi
