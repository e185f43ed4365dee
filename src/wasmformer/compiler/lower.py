"""Pass 1, lowering: a graph becomes a list of ops over materialised features.

An *op* is what occupies a place in a transformer layer:

- a ``HeadOp``: one ``Attention`` node, one 2-D head;
- an ``FfnOp``: one ``Neurons`` feature, whose gated terms become hidden units
  that all sit in one FFN and write one residual slot.

Every linear expression is resolved (placeholders substituted) down to
*materialised* features, the ones that own a residual slot: token tables
(written by the embedding), the positional t, t², r(t) (added by the engine),
head outputs and neuron features. Only what the logits need, directly or
through other ops, is kept: everything else is pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from wasmformer.graph.expr import Attention, Expr, Feature, GraphError, HeadOutput, Neurons, Positional, TokenTable
from wasmformer.graph.walk import resolve, topological_order

# The sub-layer of an op inside its layer: attention first, then the FFN.
ATTENTION, FFN = 0, 1


@dataclass(eq=False)
class HeadOp:
    """One attention head with its expressions resolved to materialised features."""

    head: Attention
    query: Expr
    key: Expr
    key_square: Expr | None
    values: list[Expr]
    clear: Expr | None
    outputs: list[HeadOutput | None]  # by value index; None for an output nobody reads
    parity: int = field(default=ATTENTION, init=False)

    @property
    def name(self) -> str:
        return self.head.name

    @property
    def tie(self) -> str:
        return self.head.tie

    def expressions(self) -> list[Expr]:
        optional = [e for e in (self.key_square, self.clear) if e is not None]
        return [self.query, self.key, *self.values, *optional]

    def writes(self) -> list[Feature]:
        return [output for output in self.outputs if output is not None]

    def describe(self) -> str:
        return self.head.describe()


@dataclass(frozen=True)
class Unit:
    """coefficient * a * relu(b): one FFN hidden unit (a, b resolved)."""

    coefficient: object  # int | Fraction
    a: Expr
    b: Expr


@dataclass(eq=False)
class FfnOp:
    """One neuron feature: its units share one FFN and write one slot."""

    feature: Neurons
    units: list[Unit]
    parity: int = field(default=FFN, init=False)

    @property
    def name(self) -> str:
        return self.feature.name

    def expressions(self) -> list[Expr]:
        return [e for unit in self.units for e in (unit.a, unit.b)]

    def writes(self) -> list[Feature]:
        return [self.feature]

    def describe(self) -> str:
        return self.feature.describe()


Op = Union[HeadOp, FfnOp]


@dataclass
class Program:
    """The lowered graph: ops in dependency order and who produces and reads each feature."""

    graph: object
    ops: list[Op]
    features: list[Feature]  # materialised features that someone reads, in graph order
    producer: dict[Feature, Op | None]  # None: the embedding (token tables, positional)
    readers: dict[Feature, list[Op]]
    logits: dict[str, Expr]
    logit_features: set[Feature]
    one: Feature
    positional: dict[str, Feature]  # "t" | "t2" | "recency" -> feature
    pruned_ops: int

    @property
    def fixed(self) -> list[Feature]:
        """Features with a slot of their own for the whole model: ``one``, t, t², r(t)."""
        return [self.one, self.positional["t"], self.positional["t2"], self.positional["recency"]]

    def inputs(self, op: Op) -> list[Feature]:
        return _features_of(op.expressions())


def lower(graph, order: list | None = None) -> Program:
    """Resolve every expression and keep the ops the logits depend on (``order``: a topological order)."""
    if graph.logits is None:
        raise GraphError(f"graph {graph.name!r} has no output: call set_logits or set_next_token_id")
    order = order if order is not None else topological_order(graph)  # raises GraphError naming any cycle
    logits = {token: resolve(score) for token, score in graph.logits.items()}
    ops_by_node = _lower_reachable(graph, logits)
    ops = [ops_by_node[id(node)] for node in order if id(node) in ops_by_node]
    pruned = len(graph.heads) + sum(isinstance(f, Neurons) for f in graph.features) - len(ops)
    return _index(graph, ops, logits, pruned)


def _lower_reachable(graph, logits: dict[str, Expr]) -> dict[int, Op]:
    """Ops reachable backwards from the logits, keyed by the id of their graph node."""
    ops: dict[int, Op] = {}
    read: set[int] = set()
    pending = _features_of(logits.values())
    while pending:
        feature = pending.pop()
        if id(feature) in read:
            continue
        read.add(id(feature))
        node = feature.head if isinstance(feature, HeadOutput) else feature
        if isinstance(feature, (TokenTable, Positional)) or id(node) in ops:
            continue
        if isinstance(feature, HeadOutput):
            op = _lower_head(node)
        elif isinstance(feature, Neurons):
            op = FfnOp(feature, [Unit(t.coefficient, resolve(t.a), resolve(t.b)) for t in feature.terms])
        else:
            raise GraphError(f"{feature.describe()}: cannot be materialised (unknown feature kind)")
        ops[id(node)] = op
        pending.extend(_features_of(op.expressions()))
    for op in ops.values():
        if isinstance(op, HeadOp):
            op.outputs = [output if id(output) in read else None for output in op.head.outputs]
    return ops


def _lower_head(head: Attention) -> HeadOp:
    optional = {name: resolve(e) if e is not None else None for name, e in
                (("key_square", head.key_square), ("clear", head.clear))}
    return HeadOp(
        head=head,
        query=resolve(head.query),
        key=resolve(head.key),
        values=[resolve(v) for v in head.values],
        outputs=list(head.outputs),
        **optional,
    )


def _index(graph, ops: list[Op], logits: dict[str, Expr], pruned: int) -> Program:
    positional = {f.kind: f for f in graph.features if isinstance(f, Positional)}
    one = graph.one.features[0]
    producer: dict[Feature, Op | None] = {f: None for f in [one, *positional.values()]}
    readers: dict[Feature, list[Op]] = {}
    for op in ops:
        for feature in op.writes():
            producer[feature] = op
        for feature in _features_of(op.expressions()):
            readers.setdefault(feature, []).append(op)
            producer.setdefault(feature, None)  # token tables come from the embedding
    logit_features = set(_features_of(logits.values()))
    for feature in logit_features:
        readers.setdefault(feature, [])
        producer.setdefault(feature, None)
    fixed = {id(one), *(id(f) for f in positional.values())}
    features = [f for f in graph.features if f in readers and id(f) not in fixed]
    return Program(graph, ops, features, producer, readers, logits, logit_features, one, positional, pruned)


def _features_of(exprs) -> list[Feature]:
    seen: dict[Feature, None] = {}
    for expr in exprs:
        for feature in expr.terms:
            seen.setdefault(feature)
    return list(seen)
