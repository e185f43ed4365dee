#include "heads.hpp"

#include <cmath>
#include <stdexcept>

namespace wf {

int PositionalHead::compare_positions(double qx, double qy, int64_t to, int64_t from) const {
    // The engine only builds a PositionalHead when every term of the key stays
    // below 2^53 in magnitude up to the precision horizon (the test hook is used
    // with small coefficients), so each key, and the difference of two, is an
    // exact int64 computation.
    const int64_t dx = key_.a * (to - from);
    const int64_t dy = (key_.d - key_.b * (to + from)) * (to - from);
    return sign_of_dot(qx, qy, dx, dy);
}

// For q_y > 0 the score is strictly concave in t: the first position whose
// successor does not score strictly higher is the (first) argmax. `tied_with_next`
// says whether that successor scores exactly the same (the only possible tie).
int64_t PositionalHead::concave_argmax(double qx, double qy, int64_t last, bool& tied_with_next) const {
    // Sign of score(t + 1) - score(t); the last position has no successor.
    auto successor_sign = [&](int64_t t) { return t < last ? compare_positions(qx, qy, t + 1, t) : -1; };
    // Guess from the real vertex of the parabola, t* = (qx*a + qy*d) / (2*qy*b) ...
    const double vertex = (qx * static_cast<double>(key_.a) + qy * static_cast<double>(key_.d)) /
                          (2.0 * qy * static_cast<double>(key_.b));
    int64_t best = 0;
    if (vertex >= static_cast<double>(last)) {
        best = last;
    } else if (vertex > 0.0) {
        best = static_cast<int64_t>(std::floor(vertex));
    }
    // ... confirm it exactly, and fall back to a binary search when it is off.
    int after_best = successor_sign(best);
    if (after_best > 0 || (best > 0 && successor_sign(best - 1) <= 0)) {
        int64_t low = 0, high = last;  // the answer lies in [low, high]
        while (low < high) {
            const int64_t middle = low + (high - low) / 2;
            if (successor_sign(middle) > 0) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        best = low;
        after_best = successor_sign(best);
    }
    tied_with_next = after_best == 0;
    return best;
}

PositionalWinners PositionalHead::query(double qx, double qy, int64_t last) const {
    if (!std::isfinite(qx) || !std::isfinite(qy)) {
        throw std::domain_error("an attention query is not finite: the model left its exact range");
    }
    if (last < 0) throw std::logic_error("attention over an empty set of keys");
    PositionalWinners winners;
    if (qy > 0.0) {  // concave: one peak, or two adjacent positions tying at it
        bool tied_with_next = false;
        winners.first = concave_argmax(qx, qy, last, tied_with_next);
        winners.second = tied_with_next ? winners.first + 1 : winners.first;
        return winners;
    }
    int end_comparison = 0;  // sign of score(last) - score(0)
    if (qy < 0.0) {
        // Strictly convex: the maximum is at an end, never strictly inside.
        end_comparison = compare_positions(qx, qy, last, 0);
    } else {
        // Linear in t with slope qx * a.
        const double slope = qx * static_cast<double>(key_.a);
        if (slope == 0.0 && last > 0) {
            winners.all = true;  // every position ties
            return winners;
        }
        end_comparison = slope > 0.0 ? 1 : (slope < 0.0 ? -1 : 0);
    }
    winners.first = end_comparison > 0 ? last : 0;
    winners.second = end_comparison < 0 ? 0 : last;
    return winners;
}

}  // namespace wf
