"""The precision budget: the numbers that keep a compiled graph exact in float64.

Every constant here is chosen once and explained once; docs/compiler.md walks
through the same budget in prose.
"""

from __future__ import annotations

import math

# float64 represents every integer of magnitude below 2**53 exactly; sums and
# products of such integers stay exact while their results do too.
EXACT_INTEGER_LIMIT = 2**53

# Attention temperature, folded into W_q. Every lookup is designed so that the
# winning score beats every loser by at least 1/2 (integer scores: by 1;
# snapped counts: by 1 - 2*COUNT_ERROR_LIMIT). exp(-746) underflows to exactly
# 0.0 in float64, so with S * 1/2 = 1024 > 746 the dense softmax puts weight
# exactly 1.0 on the winner and exactly 0.0 elsewhere. A power of two, so
# scaling a score by S never rounds.
TEMPERATURE = 2**11

# A snapped count is an approximate integer (a prefix mean times t+1) rounded
# by a positional lookup. The lookup picks the right integer while the error is
# below 1/2; we demand 1/4 so the winning margin stays >= 1/2 (see TEMPERATURE).
COUNT_ERROR_LIMIT = 0.25

# Unit roundoff of float64.
UNIT_ROUNDOFF = 2.0**-53


def tie_break_scale(max_exact_tokens: int) -> int:
    """B for 'latest' lookups: score = B*(2qk - k*k) + position.

    A key mismatch costs at least B, a newer position gains at most
    max_exact_tokens - 1, so any power of two >= max_exact_tokens makes the key decide
    first and the position only break ties.
    """
    return 1 << max(0, (max_exact_tokens - 1).bit_length())


def clear_penalty(score_magnitude: int) -> int:
    """M: subtracted from the key of a cleared token; a power of two well above every live score."""
    return 1 << (4 * max(1, score_magnitude)).bit_length()


def mean_count_error(max_exact_tokens: int) -> float:
    """Worst-case error of (t+1) * mean(indicator) in float64 at positions below max_exact_tokens.

    The softmax weights are fl(1/n); a sum of n such terms carries at most
    n*u relative error (any summation order), and multiplying by n scales it:
    error <= n * (n * u) for 0/1 values.
    """
    n = max_exact_tokens
    return n * n * UNIT_ROUNDOFF * (1 + 4 * UNIT_ROUNDOFF * n)


def max_exact_tokens_for_counts() -> int:
    """The largest trace length at which snapped counts stay within COUNT_ERROR_LIMIT."""
    return int(math.isqrt(int(COUNT_ERROR_LIMIT / UNIT_ROUNDOFF))) - 1


def snap_rounding_error(max_exact_tokens: int) -> float:
    """Rounding error of a snap score S*(2*q*t_j - t_j^2) for a non-integer q, in units of S.

    The two products are each about 2*T^2 and rounded to within half an ulp.
    """
    t = float(max_exact_tokens)
    return 4.0 * t * t * UNIT_ROUNDOFF
