"""Small patterns built from the graph primitives, shared by the example machines and the interpreter."""

from __future__ import annotations

from typing import Sequence

from wasmformer.graph.expr import Expr, ExprLike, GraphError
from wasmformer.graph.graph import Graph


def thresholds_reached(graph: Graph, name: str, x: ExprLike, thresholds: Sequence[int]) -> Expr:
    """How many of the thresholds the integer x has reached: sum of [x >= th], two units each.

    With thresholds k*10^p (k = 1..9) this is the decimal digit of x at place
    p when x < 10^(p+1): division by a constant without a division.
    """
    x = Expr.of(x)
    terms = []
    for threshold in thresholds:
        terms += [(1, graph.one, x - threshold + 1), (-1, graph.one, x - threshold)]
    return graph.neurons(name, terms, bounds=(0, len(thresholds)))


def switch(graph: Graph, name: str, selector: ExprLike, cases: dict[int, ExprLike]) -> Expr:
    """cases[selector] for an integer selector (0 when no case matches): three units per case.

    Each case is ``graph.equals`` folded into one feature: value * hat(selector - case),
    where hat(d) = relu(d+1) - 2 relu(d) + relu(d-1) is 1 at d = 0 and 0 at other integers.
    """
    selector = Expr.of(selector)
    if not selector.is_integer_valued():
        raise GraphError(f"switch {name!r}: its selector ({selector!r}) is not an exact integer at every token")
    terms, lows, highs = [], [0], [0]
    for case, value in cases.items():
        value, d = Expr.of(value), selector - case
        terms += [(1, value, d + 1), (-2, value, d), (1, value, d - 1)]
        lows.append(value.bounds()[0])
        highs.append(value.bounds()[1])
    return graph.neurons(name, terms, bounds=(min(lows), max(highs)))


def decimal_digits(graph: Graph, name: str, x: Expr, places: int) -> list[Expr]:
    """The decimal digits of 0 <= x < 10^places, ones first: one threshold feature per place."""
    digits: list[Expr] = []
    remainder = x
    for place in reversed(range(places)):
        unit = 10**place
        digit = thresholds_reached(graph, f"{name}.digit{place}", remainder, [k * unit for k in range(1, 10)])
        digits.append(digit)
        remainder = remainder - unit * digit  # linear: the unit is a constant
    return digits[::-1]


def floor_quotient(graph: Graph, name: str, x: ExprLike, divisor: int, level_bits: Sequence[int]) -> Expr:
    """floor(x / divisor) for an exact integer 0 <= x < divisor * 2^sum(level_bits), digit by digit.

    Level i finds the quotient's next ``level_bits[i]`` bits (most significant
    first) with ``thresholds_reached`` on what is left of x, then subtracts
    digit * unit (linear: the unit is a constant). Cost: 2 * (2^bits - 1) units
    per level, one FFN layer each: fewer, wider levels trade units for depth.
    """
    remaining, quotient, shift = Expr.of(x), Expr(), sum(level_bits)
    for level, bits in enumerate(level_bits):
        shift -= bits
        unit = divisor << shift
        digit = thresholds_reached(graph, f"{name}.level{level}", remaining, [k * unit for k in range(1, 1 << bits)])
        quotient = quotient + digit * (1 << shift)
        remaining = remaining - digit * unit
    return quotient
