// The two O(1) head specialisations, chosen from the weights alone.
//
// Both give the same answer as KeyHull would for the same keys: the exact
// argmax of q . k over every position so far, exact ties averaged.
#pragma once

#include <cstdint>
#include <vector>

#include "exact.hpp"
#include "hull.hpp"

namespace wf {

// A head whose key is the same for every token: all scores tie, the answer is
// the mean of every value so far.
class MeanHead {
   public:
    void append(double value_x, double value_y) { all_.add(value_x, value_y); }
    void query(double out[2]) const { all_.average_into(out); }

   private:
    ValueSum all_;
};

// key(t) = (a*t + c0, -b*t^2 + d*t + c1) with integer coefficients and b > 0.
struct ParabolaKey {
    int64_t a = 0;
    int64_t c0 = 0;
    int64_t b = 1;
    int64_t d = 0;
    int64_t c1 = 0;
};

// The positions whose scores tie at the maximum: `first` and `second` (the same
// position when only one wins), or every position so far when `all`.
struct PositionalWinners {
    int64_t first = 0;
    int64_t second = 0;
    bool all = false;
};

// A head whose key depends only on the position t, along a parabola: the score
// q . key(t) is a quadratic in t, so its integer argmax is found analytically.
// It stores nothing per position: the engine recomputes the winners' values
// (see history.hpp), which is what keeps memory small.
class PositionalHead {
   public:
    explicit PositionalHead(ParabolaKey key) : key_(key) {}

    // The best of positions 0..last for the query q; `all` happens only when
    // q_y == 0 and the score does not depend on t.
    PositionalWinners query(double qx, double qy, int64_t last) const;

   private:
    // Sign of score(to) - score(from), exactly.
    int compare_positions(double qx, double qy, int64_t to, int64_t from) const;
    int64_t concave_argmax(double qx, double qy, int64_t last, bool& tied_with_next) const;

    ParabolaKey key_;
};

}  // namespace wf
