"""Features and linear expressions: the values a graph computes at every token.

A *feature* is one number per token that lives in a residual slot once the
graph is compiled: a token-table value, a positional value, an FFN output or an
attention output. A *linear expression* (``Expr``) is an integer-weighted sum
of features plus a constant. Linear expressions cost nothing at run time: the
compiler folds them into weight matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Union

from wasmformer.errors import WasmformerError

Number = Union[int, Fraction]


class GraphError(WasmformerError, ValueError):
    """A graph that cannot be compiled exactly; the message names the offending node."""


@dataclass(eq=False)
class Feature:
    """One named value per token. Subclasses say how it is produced.

    ``lo``/``hi`` bound the value at every token up to the graph's horizon;
    ``exact`` is False only for approximate values (raw prefix means), which
    must be snapped back to integers before they feed anything that needs
    exactness.
    """

    name: str
    lo: Number
    hi: Number
    exact: bool = field(default=True, kw_only=True)
    index: int = field(default=-1, kw_only=True)  # creation order inside its graph

    def expr(self) -> "Expr":
        return Expr({self: 1})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} [{self.lo}, {self.hi}]>"

    def describe(self) -> str:
        # "TokenTable" -> "token table": messages read as prose
        kind = "".join(f" {ch.lower()}" if ch.isupper() else ch for ch in type(self).__name__).strip()
        return f"{kind} {self.name!r}"


class Expr:
    """sum(coefficient * feature) + constant, with integer (or rational) coefficients."""

    __slots__ = ("terms", "constant")

    def __init__(self, terms: dict[Feature, Number] | None = None, constant: Number = 0):
        self.terms = {feature: c for feature, c in (terms or {}).items() if c != 0}
        self.constant = constant

    # -- construction -------------------------------------------------------
    @staticmethod
    def of(value: "ExprLike") -> "Expr":
        if isinstance(value, Expr):
            return value
        if isinstance(value, Feature):
            return value.expr()
        if isinstance(value, (int, Fraction)) and not isinstance(value, bool):
            return Expr({}, value)
        raise GraphError(f"cannot use {value!r} ({type(value).__name__}) in a linear expression")

    def __add__(self, other: "ExprLike") -> "Expr":
        other = Expr.of(other)
        terms = dict(self.terms)
        for feature, c in other.terms.items():
            terms[feature] = terms.get(feature, 0) + c
        return Expr(terms, self.constant + other.constant)

    __radd__ = __add__

    def __neg__(self) -> "Expr":
        return self * -1

    def __sub__(self, other: "ExprLike") -> "Expr":
        return self + (-Expr.of(other))

    def __rsub__(self, other: "ExprLike") -> "Expr":
        return Expr.of(other) - self

    def __mul__(self, factor: Number) -> "Expr":
        if isinstance(factor, (Expr, Feature)):
            raise GraphError("a product of two expressions is not linear: use graph.product(...)")
        if not isinstance(factor, (int, Fraction)) or isinstance(factor, bool):
            raise GraphError(f"linear expressions scale by int or Fraction, not {type(factor).__name__}")
        return Expr({f: c * factor for f, c in self.terms.items()}, self.constant * factor)

    __rmul__ = __mul__

    # -- properties ---------------------------------------------------------
    @property
    def features(self) -> list[Feature]:
        return list(self.terms)

    def bounds(self) -> tuple[Number, Number]:
        lo = hi = self.constant
        for feature, c in self.terms.items():
            a, b = c * feature.lo, c * feature.hi
            lo, hi = lo + min(a, b), hi + max(a, b)
        return lo, hi

    def magnitude(self) -> Number:
        lo, hi = self.bounds()
        return max(abs(lo), abs(hi))

    def is_integer_valued(self) -> bool:
        """True when the value is an exact integer at every token."""
        return (
            all(f.exact for f in self.terms)
            and all(Fraction(c).denominator == 1 for c in self.terms.values())
            and Fraction(self.constant).denominator == 1
            and all(Fraction(f.lo).denominator == 1 and Fraction(f.hi).denominator == 1 for f in self.terms)
        )

    def is_constant(self) -> bool:
        return not self.terms

    def evaluate(self, values: dict[Feature, Number]) -> Number:
        total = self.constant
        for feature, c in self.terms.items():
            total += c * values[feature]
        return total

    def __repr__(self) -> str:
        parts = [f"{c}*{f.name}" for f, c in self.terms.items()]
        if self.constant or not parts:
            parts.append(str(self.constant))
        return " + ".join(parts)


ExprLike = Union[Expr, Feature, int, Fraction]


# -- the kinds of feature ------------------------------------------------------
@dataclass(eq=False, repr=False)
class TokenTable(Feature):
    """A value fixed per token id (folded into the embedding matrix)."""

    table: dict[str, int] = field(default_factory=dict, kw_only=True)  # token -> value; absent tokens are 0


@dataclass(eq=False, repr=False)
class Positional(Feature):
    """t, t*t or the recency r(t): added to the residual by the engine."""

    kind: str = field(default="t", kw_only=True)  # "t" | "t2" | "recency"


@dataclass(frozen=True)
class GatedTerm:
    """coefficient * a * relu(b): one FFN hidden unit."""

    coefficient: Number
    a: Expr
    b: Expr


@dataclass(eq=False, repr=False)
class Neurons(Feature):
    """The sum of a few gated units computed in one FFN and written to one slot."""

    terms: list[GatedTerm] = field(default_factory=list, kw_only=True)

    def inputs(self) -> list[Feature]:
        return _unique(f for term in self.terms for e in (term.a, term.b) for f in e.features)


LATEST = "latest"  # ties on the key go to the newest token (position is part of the key)
UNIQUE = "unique"  # keys are distinct by construction (e.g. positions); ties average
AVERAGE = "average"  # constant key: the mean of the value over every uncleared token
TIE_RULES = (LATEST, UNIQUE, AVERAGE)


@dataclass(eq=False, repr=False)
class Attention:
    """One 2-D attention head: up to two values fetched by a query/key match.

    Not a Feature itself: its outputs are ``HeadOutput`` features.
    """

    name: str
    query: Expr
    key: Expr
    values: list[Expr]
    clear: Expr | None
    tie: str
    key_square: Expr | None = None  # k*k as a linear expression (see Graph.lookup)
    outputs: list["HeadOutput"] = field(default_factory=list)
    index: int = -1

    def inputs(self) -> list[Feature]:
        exprs = [self.query, self.key, *self.values]
        exprs += [e for e in (self.clear, self.key_square) if e is not None]
        return _unique(f for e in exprs for f in e.features)

    def describe(self) -> str:
        return f"{self.tie} lookup {self.name!r}"


@dataclass(eq=False, repr=False)
class HeadOutput(Feature):
    head: Attention | None = field(default=None, kw_only=True)
    slot: int = field(default=0, kw_only=True)  # 0 or 1: which value of the head


def _unique(features: Iterable[Feature]) -> list[Feature]:
    seen: dict[Feature, None] = {}
    for feature in features:
        seen.setdefault(feature)
    return list(seen)
