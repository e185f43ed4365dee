"""One attention head's KV cache as a 2-D convex hull: exact hard-max attention in O(log n).

A 2-D head scores key k_j against query q as q·k_j. In the hard-max limit the
attention output is the value of the best key, or, when several keys attain
exactly the best score, the average of their values (softmax gives equal
scores equal weights). The best key for any query is a vertex of the convex
hull of the keys, so the cache keeps only the hull:

- the *upper chain* (points sorted by x, turning clockwise) answers queries
  with qy > 0, where the score is qy·(m·x + y) with m = qx/qy;
- the *lower chain* answers qy < 0; it is stored as the upper chain of the
  mirrored points (x, -y), so one data structure serves both;
- qy == 0 scores qx·x: the winners are all keys with the largest (qx > 0) or
  smallest (qx < 0) x, whatever their y, so those two columns are summed
  separately; qx == qy == 0 makes every key tie, answered by a running total.

Exactness. Keys, queries and values are float64, but every comparison here is
made on their exact values, in Python integers. Every finite float is a dyadic
rational n / 2^e, so the cache stores each key coordinate as the integer
coordinate · 2^F, where F (``_fraction_bits``) is the largest e seen so far
(0 while all keys are integral, the common case); a key with more fractional
bits raises F once and rescales the stored points. A common positive scale
changes no orientation and no argmax, so orientation tests, scores,
breakpoints and tie detection are exact integer arithmetic, and a tie is a tie
of the exact dot products. Queries are scaled to integers the same way.
Values are summed exactly (``int``, or ``fractions.Fraction`` when not
integral). Identical keys are merged into one point that carries the exact
sums of their values and their count; collinear points on a hull edge are
kept, because a query perpendicular to the edge makes them tie with the
edge's endpoints.

Averaging. The output is (exact sum of the tied values) / (number of tied keys),
rounded once to float64. The dense engine computes the same average as a
softmax, sum_j (1/n)·v_j, which can differ from it in the last bits; the
model's precision budget keeps every value that matters an exact integer (and
ties in lookups are broken by position inside the key), so the two agree
wherever the model is exact.

Complexity, for h points on a chain: a query is one bisection, O(log h), plus
one step per extra tied point of a collinear run; an insert is O(log h)
amortised, since every point enters and leaves a chain at most once. A key
strictly inside the hull can never win again and is dropped, so memory follows
the hull size, not the number of inserts.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import total_ordering
from typing import Union

from sortedcontainers import SortedKeyList, SortedList

Exact = Union[int, Fraction]


def exact(value: float) -> Exact:
    """The exact value of a finite float: an int when integral (fast), else a Fraction."""
    value = float(value)
    if value.is_integer():
        return int(value)
    if not math.isfinite(value):
        raise ValueError(f"attention inputs must be finite, got {value}")
    return Fraction(value)


def dyadic(value: float) -> tuple[int, int]:
    """(n, e) with value == n / 2**e exactly and e >= 0: every finite float is one."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"attention inputs must be finite, got {value}")
    numerator, power_of_two = value.as_integer_ratio()
    return numerator, power_of_two.bit_length() - 1


def integer_direction(qx: float, qy: float) -> tuple[int, int]:
    """The query (qx, qy) times the smallest power of two that makes both integers.

    A positive scale changes no argmax and no tie, so queries are compared in integers.
    """
    (nx, ex), (ny, ey) = dyadic(qx), dyadic(qy)
    bits = max(ex, ey)
    return nx << (bits - ex), ny << (bits - ey)


class ValueSum:
    """Exact sums of the two value coordinates over some keys, and how many keys they are."""

    __slots__ = ("v1", "v2", "count")

    def __init__(self) -> None:
        self.v1: Exact = 0
        self.v2: Exact = 0
        self.count = 0

    def add(self, v1: Exact, v2: Exact) -> None:
        self.v1 += v1
        self.v2 += v2
        self.count += 1

    def add_sum(self, other: ValueSum) -> None:
        self.v1 += other.v1
        self.v2 += other.v2
        self.count += other.count

    def mean(self) -> tuple[float, float]:
        """The average value, rounded once to float64 (int / int division is correctly rounded)."""
        return float(self.v1 / self.count), float(self.v2 / self.count)


class _Point:
    """A distinct key position on a chain and the values of every key inserted there."""

    __slots__ = ("x", "y", "values")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y
        self.values = ValueSum()


def _x_of(point: _Point) -> int:
    return point.x


def _cross(origin: _Point, a: _Point, b: _Point) -> int:
    """Twice the signed area of (origin, a, b): > 0 turns left, < 0 turns right, 0 collinear."""
    return (a.x - origin.x) * (b.y - origin.y) - (a.y - origin.y) * (b.x - origin.x)


@total_ordering
class _Slope:
    """The exact ratio rise / run with run > 0, compared by cross-multiplication.

    Cheaper than ``Fraction`` (no gcd); exact for integer rise and run, and
    unchanged when both are scaled by the same positive factor.
    """

    __slots__ = ("rise", "run")

    def __init__(self, rise: int, run: int) -> None:
        self.rise = rise
        self.run = run

    def __lt__(self, other: _Slope) -> bool:
        return self.rise * other.run < other.rise * self.run

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Slope):
            return NotImplemented
        return self.rise * other.run == other.rise * self.run

    __hash__ = None  # equal slopes have different representations


def _breakpoint(left: _Point, right: _Point) -> _Slope:
    """The slope parameter m above which ``right`` scores more than ``left`` under m·x + y.

    m·x_l + y_l = m·x_r + y_r at m = (y_l - y_r) / (x_r - x_l); x_r > x_l always.
    """
    return _Slope(left.y - right.y, right.x - left.x)


class _UpperChain:
    """The upper convex chain of a point set, answering argmax of m·x + y.

    ``_points`` is sorted by x, strictly increasing (at one x only the highest
    point can win a query with qy > 0). Every turn along it is clockwise or
    straight; straight turns (collinear points) are kept because they can tie.

    ``_breakpoints`` holds one entry per consecutive pair: the m at which the
    right point takes over from the left one. Along a convex chain these never
    decrease, so the sorted multiset lists them in chain order (the i-th
    breakpoint belongs to points i and i+1) and a query is one bisection.
    """

    def __init__(self) -> None:
        self._points = SortedKeyList(key=_x_of)
        self._breakpoints = SortedList()

    def __len__(self) -> int:
        return len(self._points)

    def insert(self, x: int, y: int, v1: Exact, v2: Exact) -> bool:
        """Add a point; False when it cannot change any answer (strictly under the chain)."""
        points = self._points
        if points and points[0].x <= x <= points[-1].x and y < min(points[0].y, points[-1].y):
            return False  # under the chord of the chain's ends, so under the (concave) chain: no search needed
        index = points.bisect_key_left(x)
        if index < len(points) and points[index].x == x:
            same_x = points[index]
            if y < same_x.y:
                return False  # directly below a chain point: never wins
            if y == same_x.y:
                same_x.values.add(v1, v2)  # an identical key: merge
                return True
            self._remove(index)  # the new point is higher: it replaces the old one
        point = _Point(x, y)
        point.values.add(v1, v2)
        left = points[index - 1] if index > 0 else None
        right = points[index] if index < len(points) else None
        if left is not None and right is not None and _cross(left, point, right) > 0:
            return False  # strictly below the chain: never wins
        while index >= 2:
            before = points[index - 2]
            if _cross(before, left, point) <= 0:
                break
            self._remove(index - 1)  # strictly below the segment from ``before`` to the new point
            index, left = index - 1, before
        while index + 1 < len(points):
            after = points[index + 1]
            if _cross(point, right, after) <= 0:
                break
            self._remove(index)
            right = after
        self._add(point, left, right)
        return True

    def rescale(self, shift: int) -> None:
        """Multiply every coordinate by 2**shift (breakpoints are ratios: they do not change)."""
        points = list(self._points)
        for point in points:
            point.x <<= shift
            point.y <<= shift
        self._points = SortedKeyList(points, key=_x_of)  # the list caches keys: rebuild it

    def best(self, m: _Slope) -> ValueSum:
        """The values of every point maximising m·x + y (a collinear run when m hits a breakpoint)."""
        index = self._breakpoints.bisect_left(m)  # first pair whose right point does not win
        if index == len(self._breakpoints) or self._breakpoints[index] != m:
            return self._points[index].values
        last = self._breakpoints.bisect_right(m)  # pairs index..last-1 tie exactly
        tied = ValueSum()
        for point in self._points.islice(index, last + 1):
            tied.add_sum(point.values)
        return tied

    def _remove(self, index: int) -> None:
        points, point = self._points, self._points[index]
        left = points[index - 1] if index > 0 else None
        right = points[index + 1] if index + 1 < len(points) else None
        if left is not None:
            self._breakpoints.remove(_breakpoint(left, point))
        if right is not None:
            self._breakpoints.remove(_breakpoint(point, right))
        if left is not None and right is not None:
            self._breakpoints.add(_breakpoint(left, right))
        del points[index]

    def _add(self, point: _Point, left: _Point | None, right: _Point | None) -> None:
        """Put ``point`` on the chain between its neighbours ``left`` and ``right``."""
        if left is not None and right is not None:
            self._breakpoints.remove(_breakpoint(left, right))
        if left is not None:
            self._breakpoints.add(_breakpoint(left, point))
        if right is not None:
            self._breakpoints.add(_breakpoint(point, right))
        self._points.add(point)


class HullCache:
    """Exact hard-max attention for one 2-D head: ``insert`` keys with values, ``query`` the output."""

    def __init__(self, upper: bool = True, lower: bool = True) -> None:
        """``upper`` / ``lower``: whether queries with qy > 0 / qy < 0 can come (the other chain is not kept)."""
        self._fraction_bits = 0  # stored coordinates are the exact key coordinates times 2**this
        self._upper = _UpperChain() if upper else None  # points (x, y), for qy > 0
        self._lower = _UpperChain() if lower else None  # points (x, -y): the lower hull mirrored, for qy < 0
        # the last query and its answer, valid until the chains or sums change (idle heads repeat queries)
        self._version = 0
        self._remembered: tuple[float, float, int, tuple[float, float]] | None = None
        self._everything = ValueSum()  # qx == qy == 0: every key ties
        self._max_x: int | None = None
        self._at_max_x = ValueSum()  # qy == 0, qx > 0: every key with the largest x ties
        self._min_x: int | None = None
        self._at_min_x = ValueSum()

    @property
    def upper_size(self) -> int:
        return len(self._upper) if self._upper is not None else 0

    @property
    def lower_size(self) -> int:
        return len(self._lower) if self._lower is not None else 0

    @property
    def count(self) -> int:
        """How many keys were inserted (not how many are stored)."""
        return self._everything.count

    def insert(self, kx: float, ky: float, v1: float, v2: float) -> None:
        x, y = self._scaled(kx, ky)
        v1, v2 = exact(v1), exact(v2)
        changed = self._upper is not None and self._upper.insert(x, y, v1, v2)
        changed = (self._lower is not None and self._lower.insert(x, -y, v1, v2)) or changed
        if changed or self._remembered is None or self._remembered[1] == 0:  # qy == 0 reads the sums below
            self._version += 1
        self._everything.add(v1, v2)
        if self._max_x is None or x > self._max_x:
            self._max_x, self._at_max_x = x, ValueSum()
        if x == self._max_x:
            self._at_max_x.add(v1, v2)
        if self._min_x is None or x < self._min_x:
            self._min_x, self._at_min_x = x, ValueSum()
        if x == self._min_x:
            self._at_min_x.add(v1, v2)

    def query(self, qx: float, qy: float) -> tuple[float, float]:
        """The average value of the keys with the largest exact score qx·kx + qy·ky."""
        if self._everything.count == 0:
            raise LookupError("query on an empty attention cache")
        remembered = self._remembered
        if remembered is not None and remembered[:3] == (qx, qy, self._version):
            return remembered[3]
        answer = self._winners(*integer_direction(qx, qy)).mean()
        self._remembered = (qx, qy, self._version, answer)
        return answer

    def _winners(self, qx: int, qy: int) -> ValueSum:
        # qx·x + qy·y = |qy|·(m·x ± y) with m = qx/|qy|: the chain's own objective
        if qy > 0:
            if self._upper is None:
                raise LookupError("a query with qy > 0 on a head built without its upper chain")
            return self._upper.best(_Slope(qx, qy))
        if qy < 0:
            if self._lower is None:
                raise LookupError("a query with qy < 0 on a head built without its lower chain")
            return self._lower.best(_Slope(qx, -qy))
        if qx > 0:
            return self._at_max_x
        if qx < 0:
            return self._at_min_x
        return self._everything

    def _scaled(self, kx: float, ky: float) -> tuple[int, int]:
        """The key times 2**fraction_bits, raising fraction_bits first if the key needs more."""
        (nx, ex), (ny, ey) = dyadic(kx), dyadic(ky)
        if max(ex, ey) > self._fraction_bits:
            self._refine(max(ex, ey))
        return nx << (self._fraction_bits - ex), ny << (self._fraction_bits - ey)

    def _refine(self, bits: int) -> None:
        """Raise the common scale to 2**bits; it never decreases, so this happens rarely."""
        shift = bits - self._fraction_bits
        self._fraction_bits = bits
        for chain in (self._upper, self._lower):
            if chain is not None:
                chain.rescale(shift)
        self._version += 1
        if self._max_x is not None:
            self._max_x <<= shift
            self._min_x <<= shift
