// Exact geometric predicates for the hull heads.
//
// Keys of this project's models are integer-valued floats. While every key of a
// head is an integer of magnitude below 2^62, the hull stores them as int64:
// differences of two coordinates then fit in int64 and the cross product of two
// differences fits in __int128, so orientation tests are exact. Queries stay
// doubles; the sign of q . d (d an integer difference of two keys) is decided
// exactly too, so the hull returns the exact argmax of the real dot product.
#pragma once

#include <cmath>
#include <cstdint>

namespace wf {

using int128 = __int128;
using uint128 = unsigned __int128;

// Coordinates at or beyond this magnitude leave the exact integer regime.
constexpr double kExactCoordinateLimit = 4611686018427387904.0;  // 2^62

// A float result is trusted when it clears this multiple of the sum of the
// magnitudes of its terms: converting d to double, the two products and the sum
// each round once (relative error 2^-53), so 4 * 2^-53 leaves a safety margin.
constexpr double kDotRelativeErrorBound = 4.0 * 1.1102230246251565e-16;
// Below this magnitude products may be subnormal and lose relative accuracy.
constexpr double kDotSmallestTrusted = 1e-280;
// Bits in a double's significand, implicit bit included.
constexpr int kSignificandBits = 53;

inline bool is_exact_coordinate(double value) {
    return std::fabs(value) < kExactCoordinateLimit && value == std::trunc(value);  // false for NaN
}

struct IntPoint {
    int64_t x;
    int64_t y;
};

inline int sign_of(int128 value) { return (value > 0) - (value < 0); }

// Sign of the cross product (b - a) x (c - a): +1 when a -> b -> c turns left.
inline int orientation(const IntPoint& a, const IntPoint& b, const IntPoint& c) {
    const int128 cross = static_cast<int128>(b.x - a.x) * (c.y - a.y) -
                         static_cast<int128>(b.y - a.y) * (c.x - a.x);
    return sign_of(cross);
}

inline int bit_length(uint128 value) {
    const uint64_t high = static_cast<uint64_t>(value >> 64);
    if (high != 0) return 128 - __builtin_clzll(high);
    const uint64_t low = static_cast<uint64_t>(value);
    return low == 0 ? 0 : 64 - __builtin_clzll(low);
}

// Compare a * 2^a_exp with b * 2^b_exp for nonzero a, b < 2^118: -1, 0 or +1.
inline int compare_scaled(uint128 a, int a_exp, uint128 b, int b_exp) {
    if (a_exp < b_exp) return -compare_scaled(b, b_exp, a, a_exp);
    const int shift = a_exp - b_exp;
    // a * 2^shift >= 2^(bit_length(a) - 1 + shift); once that reaches 2^118 it beats b.
    if (bit_length(a) - 1 + shift >= 118) return 1;
    const uint128 scaled = a << shift;
    return (scaled > b) - (scaled < b);
}

// value = mantissa * 2^exponent with |mantissa| < 2^53 (value finite).
inline void split_double(double value, int64_t& mantissa, int& exponent) {
    int binary_exponent = 0;
    const double fraction = std::frexp(value, &binary_exponent);  // 0.5 <= |fraction| < 1
    mantissa = static_cast<int64_t>(std::ldexp(fraction, kSignificandBits));
    exponent = binary_exponent - kSignificandBits;
}

// Exact sign of qx*dx + qy*dy without any rounding.
inline int exact_sign_of_dot(double qx, double qy, int64_t dx, int64_t dy) {
    int64_t mx = 0, my = 0;
    int ex = 0, ey = 0;
    split_double(qx, mx, ex);
    split_double(qy, my, ey);
    const int128 px = static_cast<int128>(mx) * dx;  // |px| < 2^53 * 2^64
    const int128 py = static_cast<int128>(my) * dy;
    const int sx = sign_of(px), sy = sign_of(py);
    if (sx == 0) return sy;
    if (sy == 0 || sx == sy) return sx;
    const uint128 magnitude_x = static_cast<uint128>(px < 0 ? -px : px);
    const uint128 magnitude_y = static_cast<uint128>(py < 0 ? -py : py);
    const int larger = compare_scaled(magnitude_x, ex, magnitude_y, ey);
    return larger > 0 ? sx : (larger < 0 ? sy : 0);
}

// Sign of q . d for a double query and an integer direction: a float filter,
// then the exact computation when the float result is too close to zero.
inline int sign_of_dot(double qx, double qy, int64_t dx, int64_t dy) {
    const double px = qx * static_cast<double>(dx);
    const double py = qy * static_cast<double>(dy);
    const double sum = px + py;
    const double magnitude = std::fabs(sum);
    if (magnitude > kDotSmallestTrusted &&
        magnitude > (std::fabs(px) + std::fabs(py)) * kDotRelativeErrorBound &&
        std::isfinite(sum)) {
        return sum > 0 ? 1 : -1;
    }
    return exact_sign_of_dot(qx, qy, dx, dy);
}

}  // namespace wf
