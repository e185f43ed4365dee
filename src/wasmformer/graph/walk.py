"""Walking a graph: dependencies, placeholder resolution and evaluation order.

The graph's *nodes* are its features and its attention heads. A head output
depends on its head; a head on the features its query, key, values, clear flag
and key square read; a neuron feature on the features of its gated terms; a
placeholder on the features of its definition.
"""

from __future__ import annotations

from typing import Union

from wasmformer.graph.expr import Attention, Expr, Feature, GraphError, HeadOutput, Neurons

Node = Union[Feature, Attention]


def placeholder_definition(feature: Feature) -> Expr | None:
    return getattr(feature, "definition", None) if type(feature).__name__ == "Placeholder" else None


def is_placeholder(feature: Feature) -> bool:
    return type(feature).__name__ == "Placeholder"


def dependencies(node: Node) -> list[Node]:
    if isinstance(node, Attention):
        return node.inputs()
    if isinstance(node, HeadOutput):
        return [node.head]
    if isinstance(node, Neurons):
        return node.inputs()
    if is_placeholder(node):
        definition = placeholder_definition(node)
        if definition is None:
            raise GraphError(f"placeholder {node.name!r} is never defined")
        return definition.features
    return []


def topological_order(graph) -> list[Node]:
    """Every node after the nodes it reads; a cycle raises GraphError naming it."""
    order: list[Node] = []
    done: set[int] = set()
    for root in [*graph.features, *graph.heads]:
        if id(root) in done:
            continue
        path: list[Node] = [root]
        on_path: set[int] = {id(root)}
        pending: list[list[Node]] = [list(dependencies(root))]
        while path:
            if not pending[-1]:
                node = path.pop()
                pending.pop()
                on_path.discard(id(node))
                done.add(id(node))
                order.append(node)
                continue
            dep = pending[-1].pop()
            if id(dep) in done:
                continue
            if id(dep) in on_path:
                cycle = path[path.index(dep):] + [dep]
                names = " -> ".join(_label(n) for n in cycle)
                raise GraphError(f"graph {graph.name!r} has a cycle: {names}")
            path.append(dep)
            on_path.add(id(dep))
            pending.append(list(dependencies(dep)))
    return order


def resolve(expr: Expr) -> Expr:
    """Substitute placeholder definitions until only real features remain."""
    result = Expr({}, expr.constant)
    for feature, coefficient in expr.terms.items():
        definition = placeholder_definition(feature)
        if is_placeholder(feature):
            if definition is None:
                raise GraphError(f"placeholder {feature.name!r} is never defined")
            result = result + resolve(definition) * coefficient
        else:
            result = result + Expr({feature: coefficient})
    return result


def _label(node: Node) -> str:
    return node.describe()
