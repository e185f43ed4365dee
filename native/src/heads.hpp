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

// A head whose key depends only on the position t, along a parabola: the score
// q . key(t) is a quadratic in t, so its integer argmax is found analytically
// and the values are read from an array indexed by position.
class PositionalHead {
   public:
    explicit PositionalHead(ParabolaKey key) : key_(key) {}

    void append(double value_x, double value_y);
    void query(double qx, double qy, double out[2]) const;

    std::size_t reserved_bytes() const { return values_.capacity() * sizeof(double); }

   private:
    int64_t last_position() const { return static_cast<int64_t>(values_.size() / 2) - 1; }
    // Sign of score(to) - score(from), exactly.
    int compare_positions(double qx, double qy, int64_t to, int64_t from) const;
    int64_t concave_argmax(double qx, double qy, bool& tied_with_next) const;
    void average_positions(int64_t first, int64_t second, double out[2]) const;

    ParabolaKey key_;
    std::vector<double> values_;  // x, y of position t at 2t, 2t+1
    ValueSum all_;
};

}  // namespace wf
