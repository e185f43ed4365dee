"""Static checks on a whole graph, run by the compiler before anything else.

``validate(graph)`` fails fast with a GraphError naming the offending node:

- structure: every placeholder defined, no cycles, the output set, token
  tables and logits naming only vocabulary tokens, clear flags 0/1, lookup
  queries and keys exact integers, no feature marked exact that reads an
  approximate one;
- size: every feature bound and every linear expression (including each gated
  unit a * relu(b)) below 2**53, so float64 holds it exactly;
- the precision budget (precision.py): each head's score magnitude below 2**53,
  and for snapped counts the count horizon.

Every size and budget check is monotone in ``max_exact_tokens``: value bounds that
depend on the position shrink with it. When a check fails, the message gives
the largest ``max_exact_tokens`` at which every check passes (a binary search over
bounds recomputed for that horizon) and, for a head, the key range that would
pass at the graph's own horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from wasmformer.graph import precision
from wasmformer.graph.expr import (
    AVERAGE,
    LATEST,
    UNIQUE,
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
from wasmformer.graph.walk import Node, is_placeholder, topological_order

LIMIT = precision.EXACT_INTEGER_LIMIT
Bounds = dict  # Feature -> (lo, hi) at some horizon


@dataclass
class HeadBudget:
    """The precision numbers of one head at the graph's horizon."""

    head: Attention
    query_max: Number  # max |q|
    key_max: Number  # max |k|
    magnitude: int  # bound on |score| / S over live tokens (before the clear penalty)
    clear_penalty: int  # M = precision.clear_penalty(magnitude)
    snap: bool  # a count_before snap head (approximate query)


@dataclass
class GraphReport:
    name: str
    order: list[Node]  # topological: every node after the nodes it reads
    max_exact_tokens: int  # the graph's own horizon: validate raises instead of returning a smaller one
    tie_break_scale: int  # B of 'latest' heads
    heads: dict[str, HeadBudget] = field(default_factory=dict)  # by head name

    @property
    def snap_heads(self) -> list[str]:
        return [name for name, budget in self.heads.items() if budget.snap]

    def magnitude(self, head: Attention) -> int:
        return self.heads[head.name].magnitude

    def clear_penalty(self, head: Attention) -> int:
        return self.heads[head.name].clear_penalty


def validate(graph) -> GraphReport:
    """Check ``graph`` for exact compilation; return its budget or raise GraphError naming the node."""
    check_structure(graph)
    order = topological_order(graph)  # raises GraphError naming any cycle
    check_flags_and_exactness(graph)
    problems = budget_problems(graph, order, graph.max_exact_tokens)
    if problems:
        raise GraphError(_failure_message(graph, order, problems))
    return _report(graph, order)


# -- structure -----------------------------------------------------------------------
def check_structure(graph) -> None:
    if graph.logits is None:
        raise GraphError(f"graph {graph.name!r} has no output: call set_logits or set_next_token_id")
    vocab = set(graph.vocab)
    names: set[str] = set()
    for feature in graph.features:
        if is_placeholder(feature) and getattr(feature, "definition", None) is None:
            raise GraphError(f"placeholder {feature.name!r} is never defined")
        if isinstance(feature, TokenTable):
            unknown = sorted(set(feature.table) - vocab)
            if unknown:
                raise GraphError(f"{feature.describe()}: unknown token {unknown[0]!r}")
        if feature.name in names and not _is_own_head_output(feature):
            raise GraphError(f"graph {graph.name!r}: the name {feature.name!r} is used twice")
        names.add(feature.name)
    for head in graph.heads:
        if head.name in names and not any(out.name == head.name for out in head.outputs):
            raise GraphError(f"graph {graph.name!r}: the name {head.name!r} is used twice")
    unknown = sorted(set(graph.logits) - vocab)
    if unknown:
        raise GraphError(f"graph {graph.name!r}: output: unknown token {unknown[0]!r}")


def _is_own_head_output(feature: Feature) -> bool:
    return isinstance(feature, HeadOutput) and feature.head is not None and feature.name == feature.head.name


def check_flags_and_exactness(graph) -> None:
    """What construction checked per node, re-checked on the finished graph (features may have been edited)."""
    for head in graph.heads:
        if head.clear is not None:
            lo, hi = head.clear.bounds()
            if not head.clear.is_integer_valued() or lo < 0 or hi > 1:
                raise GraphError(f"{head.describe()}: its clear flag must be 0 or 1, but ranges over [{lo}, {hi}]")
        if head.tie != AVERAGE:
            if head.key_square is None:
                raise GraphError(f"{head.describe()}: has no key square")
            if not head.key.is_integer_valued():
                raise GraphError(f"{head.describe()}: its key ({head.key!r}) is not an exact integer at every token")
            if head.tie == LATEST and not head.query.is_integer_valued():
                raise GraphError(
                    f"{head.describe()}: its query ({head.query!r}) is not an exact integer at every token"
                )
    for feature in graph.features:
        if isinstance(feature, Neurons) and feature.exact:
            approximate = [f for f in feature.inputs() if not f.exact]
            if approximate:
                raise GraphError(
                    f"{feature.describe()}: marked exact but reads the approximate {approximate[0].describe()}"
                )
    for token, score in graph.logits.items():
        if not score.is_integer_valued():
            raise GraphError(f"graph {graph.name!r}: output: the score of {token!r} is not an exact integer")


def is_snap_head(head: Attention) -> bool:
    """count_before's snapping lookups: 'unique' heads whose query is an approximate count."""
    return head.tie == UNIQUE and not head.query.is_integer_valued()


# -- bounds at a horizon ---------------------------------------------------------------
def bounds_at(order: list[Node], max_exact_tokens: int, graph_max_exact_tokens: int) -> Bounds:
    """Valid bounds of every feature over positions t < max_exact_tokens.

    At the graph's own horizon these are the declared bounds. Below it, the
    declared bounds are still valid (fewer positions), and so are bounds
    recomputed by interval arithmetic from the shrunken positional ranges: the
    intersection of both is used, so every bound is monotone in max_exact_tokens.
    """
    bounds: Bounds = {}
    for node in order:
        if isinstance(node, Feature):
            declared = (node.lo, node.hi)
            bounds[node] = declared if max_exact_tokens >= graph_max_exact_tokens else _intersect(
                declared, _recomputed(node, bounds, max_exact_tokens)
            )
    return bounds


def _recomputed(feature: Feature, bounds: Bounds, max_exact_tokens: int) -> tuple[Number, Number]:
    last = max_exact_tokens - 1
    if isinstance(feature, Positional):
        return {"t": (0, last), "t2": (0, last * last)}.get(feature.kind, (feature.lo, feature.hi))
    if isinstance(feature, Neurons):
        return _neuron_bounds(feature, bounds)
    if isinstance(feature, HeadOutput):
        return expr_bounds(feature.head.values[feature.slot], bounds)
    if is_placeholder(feature):
        return expr_bounds(feature.definition, bounds)
    return feature.lo, feature.hi


def expr_bounds(expr: Expr, bounds: Bounds) -> tuple[Number, Number]:
    lo = hi = expr.constant
    for feature, c in expr.terms.items():
        f_lo, f_hi = bounds.get(feature, (feature.lo, feature.hi))
        a, b = c * f_lo, c * f_hi
        lo, hi = lo + min(a, b), hi + max(a, b)
    return lo, hi


def expr_magnitude(expr: Expr, bounds: Bounds) -> Number:
    lo, hi = expr_bounds(expr, bounds)
    return max(abs(lo), abs(hi))


def _unit_bounds(coefficient: Number, a: Expr, b: Expr, bounds: Bounds) -> tuple[Number, Number]:
    """Bounds of coefficient * a * relu(b)."""
    b_lo, b_hi = expr_bounds(b, bounds)
    a_lo, a_hi = expr_bounds(a, bounds)
    corners = [coefficient * x * max(0, y) for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
    return min(corners), max(corners)


def _neuron_bounds(feature: Neurons, bounds: Bounds) -> tuple[Number, Number]:
    lo = hi = 0
    for term in feature.terms:
        u_lo, u_hi = _unit_bounds(term.coefficient, term.a, term.b, bounds)
        lo, hi = lo + u_lo, hi + u_hi
    return lo, hi


def _intersect(a: tuple[Number, Number], b: tuple[Number, Number]) -> tuple[Number, Number]:
    return max(a[0], b[0]), min(a[1], b[1])


# -- the precision budget -------------------------------------------------------------
@dataclass
class Problem:
    node: Node
    message: str
    head: Attention | None = None  # set for a head whose score is too large


def head_budget(head: Attention, bounds: Bounds, max_exact_tokens: int) -> HeadBudget:
    q_max = _ceil(expr_magnitude(head.query, bounds))
    k_max = _ceil(expr_magnitude(head.key, bounds))
    magnitude = score_magnitude(head.tie, q_max, k_max, max_exact_tokens)
    return HeadBudget(head, q_max, k_max, magnitude, precision.clear_penalty(magnitude), is_snap_head(head))


def score_magnitude(tie: str, q_max: int, k_max: int, max_exact_tokens: int) -> int:
    """Bound on |score| / S: 2qk - k^2 for 'unique', B*(2qk - k^2) + position for 'latest', 0 for means."""
    if tie == AVERAGE:
        return 0
    key_score = 2 * q_max * k_max + k_max * k_max
    if tie == LATEST:
        return precision.tie_break_scale(max_exact_tokens) * key_score + max_exact_tokens
    return key_score


def budget_problems(graph, order: list[Node], max_exact_tokens: int) -> list[Problem]:
    """Every size and precision check at horizon max_exact_tokens (empty when all pass)."""
    bounds = bounds_at(order, max_exact_tokens, graph.max_exact_tokens)
    problems = _size_problems(graph, order, bounds)
    snaps = []
    for head in graph.heads:
        budget = head_budget(head, bounds, max_exact_tokens)
        if budget.magnitude >= LIMIT:
            problems.append(Problem(head, _score_message(budget, max_exact_tokens), head))
        if budget.snap:
            snaps.append(head)
    if snaps:
        problems += _count_problems(snaps[0], max_exact_tokens)
    return problems


def _size_problems(graph, order: list[Node], bounds: Bounds) -> list[Problem]:
    problems = []
    for node in order:
        for what, (lo, hi) in _sizes(node, bounds):
            if max(abs(lo), abs(hi)) >= LIMIT:
                message = f"{node.describe()}: {what} ranges over [{lo}, {hi}], not below 2**53"
                problems.append(Problem(node, message, node if isinstance(node, Attention) else None))
    for token, score in graph.logits.items():
        lo, hi = expr_bounds(score, bounds)
        if max(abs(lo), abs(hi)) >= LIMIT:
            message = f"output: the score of {token!r} ranges over [{lo}, {hi}], not below 2**53"
            problems.append(Problem(graph.one.features[0], message))
    return problems


def _sizes(node: Node, bounds: Bounds):
    """(what, interval) for every number this node puts in a weight-matrix product."""
    if isinstance(node, Attention):
        exprs = {"its query": node.query, "its key": node.key, "its key square": node.key_square}
        exprs.update({f"value {i}": v for i, v in enumerate(node.values)})
        return [(what, expr_bounds(e, bounds)) for what, e in exprs.items() if e is not None]
    sizes = [("its value", bounds[node])]
    if isinstance(node, Neurons):
        for i, term in enumerate(node.terms):
            sizes.append((f"unit {i} input a", expr_bounds(term.a, bounds)))
            sizes.append((f"unit {i} input b", expr_bounds(term.b, bounds)))
            sizes.append((f"unit {i} (a*relu(b))", _unit_bounds(term.coefficient, term.a, term.b, bounds)))
    if is_placeholder(node):
        sizes.append(("its definition", expr_bounds(node.definition, bounds)))
    return sizes


def _count_problems(snap: Attention, max_exact_tokens: int) -> list[Problem]:
    problems = []
    horizon = precision.max_exact_tokens_for_counts()
    if max_exact_tokens > horizon:
        problems.append(Problem(snap, f"{snap.describe()}: snapped counts stay exact up to {horizon} tokens, "
                                      f"not max_exact_tokens = {max_exact_tokens}"))
    error = precision.snap_rounding_error(max_exact_tokens)
    if error >= precision.COUNT_ERROR_LIMIT:
        problems.append(Problem(snap, f"{snap.describe()}: the snap score rounding error {error:.3g} at "
                                      f"max_exact_tokens = {max_exact_tokens} is not below {precision.COUNT_ERROR_LIMIT}"))
    return problems


def _score_message(budget: HeadBudget, max_exact_tokens: int) -> str:
    head = budget.head
    formula = "B*(2|q||k| + |k|^2) + T" if head.tie == LATEST else "2|q||k| + |k|^2"
    scale = f" with B = {precision.tie_break_scale(max_exact_tokens)}, T = {max_exact_tokens}" if head.tie == LATEST else ""
    return (f"{head.describe()}: score magnitude {formula} = {budget.magnitude} (|q| <= {budget.query_max}, "
            f"|k| <= {budget.key_max}{scale}) is not below 2**53")


# -- the failure message -----------------------------------------------------------
def largest_passing(passes: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest n in [low, high] with passes(n), for a monotone predicate (None when none passes)."""
    if high < low or not passes(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if passes(middle):
            low = middle
        else:
            high = middle - 1
    return low


def largest_key_range(tie: str, max_exact_tokens: int) -> int:
    """The largest K such that |q|, |k| <= K keeps the head's score magnitude below 2**53."""
    return largest_passing(lambda k: score_magnitude(tie, k, k, max_exact_tokens) < LIMIT, 0, LIMIT) or 0


def _failure_message(graph, order: list[Node], problems: list[Problem]) -> str:
    first = problems[0]
    horizon = largest_passing(lambda n: not budget_problems(graph, order, n), 2, graph.max_exact_tokens - 1)
    if horizon is None:
        advice = "no max_exact_tokens passes: the values themselves must shrink"
    else:
        advice = f"the largest max_exact_tokens that passes is {horizon} (graph has {graph.max_exact_tokens})"
    if first.head is not None:
        advice += (f"; at max_exact_tokens = {graph.max_exact_tokens} the head would pass with keys and queries "
                   f"within +-{largest_key_range(first.head.tie, graph.max_exact_tokens)}")
    more = f" ({len(problems) - 1} more problem(s) after this one)" if len(problems) > 1 else ""
    return f"graph {graph.name!r}: {first.message}; {advice}{more}"


def _report(graph, order: list[Node]) -> GraphReport:
    bounds = bounds_at(order, graph.max_exact_tokens, graph.max_exact_tokens)
    heads = {head.name: head_budget(head, bounds, graph.max_exact_tokens) for head in graph.heads}
    return GraphReport(
        name=graph.name,
        order=order,
        max_exact_tokens=graph.max_exact_tokens,
        tie_break_scale=precision.tie_break_scale(graph.max_exact_tokens),
        heads=heads,
    )


def _ceil(value: Number) -> int:
    return math.ceil(Fraction(value))
