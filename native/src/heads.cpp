#include "heads.hpp"

#include <cmath>
#include <stdexcept>

namespace wf {

void PositionalHead::append(double value_x, double value_y) {
    values_.push_back(value_x);
    values_.push_back(value_y);
    all_.add(value_x, value_y);
}

int PositionalHead::compare_positions(double qx, double qy, int64_t to, int64_t from) const {
    const int128 step = to - from;
    const int128 dx = static_cast<int128>(key_.a) * step;
    const int128 dy = -static_cast<int128>(key_.b) * step * (static_cast<int128>(to) + from) +
                      static_cast<int128>(key_.d) * step;
    // The engine only builds a PositionalHead when every key stays below 2^53 up
    // to the precision horizon, so these differences fit in int64 (the test hook
    // is used with small coefficients).
    return sign_of_dot(qx, qy, static_cast<int64_t>(dx), static_cast<int64_t>(dy));
}

// For q_y > 0 the score is strictly concave in t: the first position whose
// successor does not score strictly higher is the (first) argmax. `tied_with_next`
// says whether that successor scores exactly the same (the only possible tie).
int64_t PositionalHead::concave_argmax(double qx, double qy, bool& tied_with_next) const {
    const int64_t last = last_position();
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

void PositionalHead::average_positions(int64_t first, int64_t second, double out[2]) const {
    ValueSum sum;
    sum.add(values_[2 * first], values_[2 * first + 1]);
    if (second != first) sum.add(values_[2 * second], values_[2 * second + 1]);
    sum.average_into(out);
}

void PositionalHead::query(double qx, double qy, double out[2]) const {
    if (!std::isfinite(qx) || !std::isfinite(qy)) {
        throw std::domain_error("an attention query is not finite: the model left its exact range");
    }
    const int64_t last = last_position();
    if (last < 0) throw std::logic_error("attention over an empty set of keys");
    if (qy > 0.0) {  // concave: one peak, or two adjacent positions tying at it
        bool tied_with_next = false;
        const int64_t best = concave_argmax(qx, qy, tied_with_next);
        average_positions(best, tied_with_next ? best + 1 : best, out);
        return;
    }
    int end_comparison = 0;  // sign of score(last) - score(0)
    if (qy < 0.0) {
        // Strictly convex: the maximum is at an end, never strictly inside.
        end_comparison = compare_positions(qx, qy, last, 0);
    } else {
        // Linear in t with slope qx * a.
        const double slope = qx * static_cast<double>(key_.a);
        if (slope == 0.0 && last > 0) {
            all_.average_into(out);  // every position ties
            return;
        }
        end_comparison = slope > 0.0 ? 1 : (slope < 0.0 ? -1 : 0);
    }
    if (end_comparison > 0) {
        average_positions(last, last, out);
    } else if (end_comparison < 0) {
        average_positions(0, 0, out);
    } else {
        average_positions(0, last, out);
    }
}

}  // namespace wf
