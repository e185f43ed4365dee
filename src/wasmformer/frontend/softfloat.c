/* The float helper library: every f32/f64 instruction of WebAssembly 1.0 that computes, as a function on
 * integer-only code, exported under the instruction's own name ("f64.add", "i32.trunc_f64_s", ...).
 *
 * Built by the front end (frontend/softfloat.py) with zig's clang for wasm32-freestanding and linked with
 * zig's compiler_rt, whose soft-float routines (__adddf3, __muldf3, __divdf3, __fixdfsi, __floatsidf,
 * __extendsfdf2, __truncdfsf2, __eqdf2, floor, ceil, trunc, ...) do the IEEE arithmetic on integers. This
 * file only adapts them to wasm's rules:
 *
 *   - NaN results: every arithmetic result that is a NaN becomes the canonical NaN with a clear sign bit
 *     (0x7FC00000 / 0x7FF8000000000000), which both of the spec's rules (nan:canonical, nan:arithmetic)
 *     accept and which is what wasmtime gives with Cranelift's NaN canonicalisation;
 *   - min and max: NaN if either operand is NaN, -0 below +0;
 *   - nearest rounds half to even; the truncations to integers trap on NaN ("invalid conversion to
 *     integer") and out of range ("integer overflow"); the _sat ones saturate, NaN giving 0;
 *   - sqrt: compiler_rt's (musl's) reads a table from memory, which helper code has not got, so it is the
 *     digit-by-digit integer square root, correctly rounded; f32 sqrt is the f64 one rounded (exact: 53 bits
 *     are more than 2 * 24 + 2).
 *
 * No float arithmetic instruction may remain in the compiled module (the front end refuses it), nor any
 * memory access or global: doubles only pass through as bits.
 */
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define TRAP(name) __attribute__((import_module("wasmformer_helpers"), import_name(name), noreturn))

TRAP("trap_integer_overflow") void trap_integer_overflow(void);
TRAP("trap_invalid_conversion") void trap_invalid_conversion(void);

/* compiler_rt (zig's lib/compiler_rt) */
double __adddf3(double, double);
double __subdf3(double, double);
double __muldf3(double, double);
double __divdf3(double, double);
float __addsf3(float, float);
float __subsf3(float, float);
float __mulsf3(float, float);
double floor(double);
double ceil(double);
double trunc(double);
float floorf(float);
float ceilf(float);
float truncf(float);
double __extendsfdf2(float);
float __truncdfsf2(double);
int32_t __fixdfsi(double);
uint32_t __fixunsdfsi(double);
int64_t __fixdfdi(double);
uint64_t __fixunsdfdi(double);
int32_t __fixsfsi(float);
uint32_t __fixunssfsi(float);
int64_t __fixsfdi(float);
uint64_t __fixunssfdi(float);
double __floatsidf(int32_t);
double __floatunsidf(uint32_t);
double __floatdidf(int64_t);
double __floatundidf(uint64_t);
float __floatsisf(int32_t);
float __floatunsisf(uint32_t);
float __floatdisf(int64_t);
float __floatundisf(uint64_t);

/* bits <-> values (reinterpretations: no arithmetic) */
typedef union { uint64_t u; double d; } bits64;
typedef union { uint32_t u; float f; } bits32;
static inline uint64_t B(double d) { bits64 x; x.d = d; return x.u; }
static inline double D(uint64_t u) { bits64 x; x.u = u; return x.d; }
static inline uint32_t Bf(float f) { bits32 x; x.f = f; return x.u; }
static inline float F(uint32_t u) { bits32 x; x.u = u; return x.f; }

#define SIGN64 0x8000000000000000ull
#define INF64 0x7FF0000000000000ull
#define NAN64 0x7FF8000000000000ull
#define SIGN32 0x80000000u
#define INF32 0x7F800000u
#define NAN32 0x7FC00000u

static inline int isnan64(uint64_t u) { return (u & ~SIGN64) > INF64; }
static inline int isnan32(uint32_t u) { return (u & ~SIGN32) > INF32; }
/* the order of non-NaN values as integers: magnitude bits, negated below zero (-0 and +0 both 0) */
static inline int64_t order64(uint64_t u) { return u & SIGN64 ? -(int64_t)(u & ~SIGN64) : (int64_t)u; }
static inline int32_t order32(uint32_t u) { return u & SIGN32 ? -(int32_t)(u & ~SIGN32) : (int32_t)u; }
static inline int lt64(uint64_t x, uint64_t y) { return !isnan64(x) && !isnan64(y) && order64(x) < order64(y); }
static inline int eq64(uint64_t x, uint64_t y) { return !isnan64(x) && !isnan64(y) && order64(x) == order64(y); }
static inline int lt32(uint32_t x, uint32_t y) { return !isnan32(x) && !isnan32(y) && order32(x) < order32(y); }
static inline int eq32(uint32_t x, uint32_t y) { return !isnan32(x) && !isnan32(y) && order32(x) == order32(y); }
static inline double canonical64(double d) { return isnan64(B(d)) ? D(NAN64) : d; }
static inline float canonical32(float f) { return isnan32(Bf(f)) ? F(NAN32) : f; }

/* ---- arithmetic ---- */
EXPORT("f64.add") double f64_add(double a, double b) { return canonical64(__adddf3(a, b)); }
EXPORT("f64.sub") double f64_sub(double a, double b) { return canonical64(__subdf3(a, b)); }
EXPORT("f64.mul") double f64_mul(double a, double b) { return canonical64(__muldf3(a, b)); }
/* compiler_rt's __divdf3 (zig 0.17) rounds a quotient below the smallest normal wrongly (2^-1073 / 2.5
 * gives 0, not 2^-1074): such quotients are computed again here by long division of the significands. */
static uint64_t subnormal_quotient(uint64_t x, uint64_t y) {
    int64_t ex = (int64_t)((x >> 52) & 0x7FF), ey = (int64_t)((y >> 52) & 0x7FF);
    uint64_t mx = x & 0x000FFFFFFFFFFFFFull, my = y & 0x000FFFFFFFFFFFFFull;
    if (ex) mx |= 0x0010000000000000ull; else ex = 1;
    if (ey) my |= 0x0010000000000000ull; else ey = 1;
    while (!(mx & 0x0010000000000000ull)) { mx <<= 1; ex -= 1; }
    while (!(my & 0x0010000000000000ull)) { my <<= 1; ey -= 1; }
    /* x / y = (mx / my) 2^(ex - ey); in units of the smallest subnormal 2^-1074, with one more bit: */
    int64_t k = ex - ey + 1022 + 52 + 1;
    uint64_t q = mx >= my, remainder = mx >= my ? mx - my : mx, sticky = 0;
    for (int64_t i = 0; i < k; i++) {
        remainder <<= 1;
        q <<= 1;
        if (remainder >= my) { remainder -= my; q |= 1; }
    }
    for (int64_t i = k; i < 0 && q; i++) { sticky |= q & 1; q >>= 1; }
    sticky |= remainder != 0;
    uint64_t result = q >> 1;
    if ((q & 1) && (sticky || (result & 1))) result += 1; /* to nearest, ties to even */
    return result | ((x ^ y) & SIGN64);
}

EXPORT("f64.div") double f64_div(double a, double b) {
    uint64_t quotient = B(__divdf3(a, b)), x = B(a), y = B(b);
    int finite_nonzero = (x & ~SIGN64) && (y & ~SIGN64) && (x & ~SIGN64) < INF64 && (y & ~SIGN64) < INF64;
    if (finite_nonzero && (quotient & ~SIGN64) <= 0x0010000000000000ull) return D(subnormal_quotient(x, y));
    return canonical64(D(quotient));
}
EXPORT("f32.add") float f32_add(float a, float b) { return canonical32(__addsf3(a, b)); }
EXPORT("f32.sub") float f32_sub(float a, float b) { return canonical32(__subsf3(a, b)); }
EXPORT("f32.mul") float f32_mul(float a, float b) { return canonical32(__mulsf3(a, b)); }
/* f32 division through f64 (__divsf3 has __divdf3's flaw): the f64 quotient rounded to f32 is the f32
 * quotient correctly rounded, as 53 >= 2 * 24 + 2 bits */
EXPORT("f32.div") float f32_div(float a, float b) {
    return canonical32(__truncdfsf2(f64_div(__extendsfdf2(a), __extendsfdf2(b))));
}

/* sqrt of the bits of a double, correctly rounded to nearest: q = floor(sqrt(m * 2^54)) digit by digit,
 * where m * 2^-52 in [1, 4) is the significand scaled to an even exponent (m < 2^54: its 27 bit pairs, then
 * zeros); q's last bit is the round bit,
 * the remainder the sticky bit (an exact tie cannot happen: q^2 would be odd). */
static uint64_t sqrt_bits(uint64_t x) {
    if (x == 0 || x == SIGN64 || x == INF64) return x;
    if (x > INF64) return NAN64; /* NaN, or below zero */
    int64_t exponent = (int64_t)(x >> 52);
    uint64_t m = x & 0x000FFFFFFFFFFFFFull;
    if (exponent == 0) { /* subnormal: normalise */
        exponent = 1;
        while (!(m & 0x0010000000000000ull)) { m <<= 1; exponent -= 1; }
    } else {
        m |= 0x0010000000000000ull;
    }
    exponent -= 1023;
    if (exponent & 1) { m <<= 1; exponent -= 1; }
    uint64_t q = 0, remainder = 0, pending = m << 10; /* m * 2^54's bits from the top, two at a time */
    for (int pair = 0; pair < 54; pair++) {
        remainder = (remainder << 2) | (pending >> 62);
        pending <<= 2;
        uint64_t trial = (q << 2) | 1;
        q <<= 1;
        if (remainder >= trial) { remainder -= trial; q |= 1; }
    }
    uint64_t result = ((uint64_t)((exponent >> 1) + 1023) << 52) + ((q >> 1) - 0x0010000000000000ull);
    if ((q & 1) && (remainder || (q & 2))) result += 1; /* round to nearest, ties to even */
    return result;
}

EXPORT("f64.sqrt") double f64_sqrt(double a) { return D(sqrt_bits(B(a))); }
EXPORT("f32.sqrt") float f32_sqrt(float a) {
    return canonical32(__truncdfsf2(D(sqrt_bits(B(__extendsfdf2(a))))));
}

/* ---- min, max ---- */
EXPORT("f64.min") double f64_min(double a, double b) {
    uint64_t x = B(a), y = B(b);
    if (isnan64(x) || isnan64(y)) return D(NAN64);
    if (((x | y) & ~SIGN64) == 0) return D(x | y); /* both zeros: -0 if either is */
    return lt64(x, y) ? a : b;
}
EXPORT("f64.max") double f64_max(double a, double b) {
    uint64_t x = B(a), y = B(b);
    if (isnan64(x) || isnan64(y)) return D(NAN64);
    if (((x | y) & ~SIGN64) == 0) return D(x & y); /* both zeros: +0 if either is */
    return lt64(y, x) ? a : b;
}
EXPORT("f32.min") float f32_min(float a, float b) {
    uint32_t x = Bf(a), y = Bf(b);
    if (isnan32(x) || isnan32(y)) return F(NAN32);
    if (((x | y) & ~SIGN32) == 0) return F(x | y);
    return lt32(x, y) ? a : b;
}
EXPORT("f32.max") float f32_max(float a, float b) {
    uint32_t x = Bf(a), y = Bf(b);
    if (isnan32(x) || isnan32(y)) return F(NAN32);
    if (((x | y) & ~SIGN32) == 0) return F(x & y);
    return lt32(y, x) ? a : b;
}

/* ---- rounding to integral values ---- */
EXPORT("f64.ceil") double f64_ceil(double a) { return canonical64(ceil(a)); }
EXPORT("f64.floor") double f64_floor(double a) { return canonical64(floor(a)); }
EXPORT("f64.trunc") double f64_trunc(double a) { return canonical64(trunc(a)); }
EXPORT("f32.ceil") float f32_ceil(float a) { return canonical32(ceilf(a)); }
EXPORT("f32.floor") float f32_floor(float a) { return canonical32(floorf(a)); }
EXPORT("f32.trunc") float f32_trunc(float a) { return canonical32(truncf(a)); }

/* nearest, ties to even: below 2^52 in magnitude, (|a| + 2^52) - 2^52 rounds |a| to an integer as the
 * addition rounds (to nearest even); the sign is put back (nearest(-0.25) = -0). */
EXPORT("f64.nearest") double f64_nearest(double a) {
    uint64_t x = B(a);
    if (isnan64(x)) return D(NAN64);
    if ((x & ~SIGN64) >= 0x4330000000000000ull) return a; /* 2^52 or more, or infinite: integral */
    double magnitude = __subdf3(__adddf3(D(x & ~SIGN64), D(0x4330000000000000ull)), D(0x4330000000000000ull));
    return D(B(magnitude) | (x & SIGN64));
}
EXPORT("f32.nearest") float f32_nearest(float a) {
    uint32_t x = Bf(a);
    if (isnan32(x)) return F(NAN32);
    if ((x & ~SIGN32) >= 0x4B000000u) return a; /* 2^23 or more */
    float magnitude = __subsf3(__addsf3(F(x & ~SIGN32), F(0x4B000000u)), F(0x4B000000u));
    return F(Bf(magnitude) | (x & SIGN32));
}

/* ---- comparisons (a NaN operand: all false but ne) ---- */
EXPORT("f64.eq") int32_t f64_eq(double a, double b) { return eq64(B(a), B(b)); }
EXPORT("f64.ne") int32_t f64_ne(double a, double b) { return !eq64(B(a), B(b)); }
EXPORT("f64.lt") int32_t f64_lt(double a, double b) { return lt64(B(a), B(b)); }
EXPORT("f64.le") int32_t f64_le(double a, double b) { return lt64(B(a), B(b)) || eq64(B(a), B(b)); }
EXPORT("f64.gt") int32_t f64_gt(double a, double b) { return lt64(B(b), B(a)); }
EXPORT("f64.ge") int32_t f64_ge(double a, double b) { return lt64(B(b), B(a)) || eq64(B(a), B(b)); }
EXPORT("f32.eq") int32_t f32_eq(float a, float b) { return eq32(Bf(a), Bf(b)); }
EXPORT("f32.ne") int32_t f32_ne(float a, float b) { return !eq32(Bf(a), Bf(b)); }
EXPORT("f32.lt") int32_t f32_lt(float a, float b) { return lt32(Bf(a), Bf(b)); }
EXPORT("f32.le") int32_t f32_le(float a, float b) { return lt32(Bf(a), Bf(b)) || eq32(Bf(a), Bf(b)); }
EXPORT("f32.gt") int32_t f32_gt(float a, float b) { return lt32(Bf(b), Bf(a)); }
EXPORT("f32.ge") int32_t f32_ge(float a, float b) { return lt32(Bf(b), Bf(a)) || eq32(Bf(a), Bf(b)); }

/* ---- float <-> float ---- */
EXPORT("f64.promote_f32") double f64_promote_f32(float a) { return canonical64(__extendsfdf2(a)); }
EXPORT("f32.demote_f64") float f32_demote_f64(double a) { return canonical32(__truncdfsf2(a)); }

/* ---- integer -> float ---- */
EXPORT("f64.convert_i32_s") double f64_convert_i32_s(int32_t a) { return __floatsidf(a); }
EXPORT("f64.convert_i32_u") double f64_convert_i32_u(uint32_t a) { return __floatunsidf(a); }
EXPORT("f64.convert_i64_s") double f64_convert_i64_s(int64_t a) { return __floatdidf(a); }
EXPORT("f64.convert_i64_u") double f64_convert_i64_u(uint64_t a) { return __floatundidf(a); }
EXPORT("f32.convert_i32_s") float f32_convert_i32_s(int32_t a) { return __floatsisf(a); }
EXPORT("f32.convert_i32_u") float f32_convert_i32_u(uint32_t a) { return __floatunsisf(a); }
EXPORT("f32.convert_i64_s") float f32_convert_i64_s(int64_t a) { return __floatdisf(a); }
EXPORT("f32.convert_i64_u") float f32_convert_i64_u(uint64_t a) { return __floatundisf(a); }

/* ---- float -> integer ----
 * In range means: after truncation toward zero, the value fits. Each bound is a power of two (exact in
 * both formats): a value v fits a signed N-bit integer iff -2^(N-1) - 1 < v < 2^(N-1), an unsigned one iff
 * -1 < v < 2^N. The bounds are compared as doubles (f32 values promote exactly). */
#define P31 0x41E0000000000000ull /* 2^31 */
#define P32 0x41F0000000000000ull
#define P63 0x43E0000000000000ull
#define P64 0x43F0000000000000ull
#define BELOW_S32 0xC1E0000000200000ull /* -2^31 - 1 */
#define MINUS_ONE 0xBFF0000000000000ull

static int above(double v, uint64_t low) { return lt64(low, B(v)); }
static int below(double v, uint64_t high) { return lt64(B(v), high); }
/* -2^63 - 1 is not a double: v fits i64 iff -2^63 <= v < 2^63 */
static int at_least(double v, uint64_t low) { return !lt64(B(v), low); }

static void check(double v, int in_range) {
    if (isnan64(B(v))) trap_invalid_conversion();
    if (!in_range) trap_integer_overflow();
}

EXPORT("i32.trunc_f64_s") int32_t i32_trunc_f64_s(double a) { check(a, above(a, BELOW_S32) && below(a, P31)); return __fixdfsi(a); }
EXPORT("i32.trunc_f64_u") uint32_t i32_trunc_f64_u(double a) { check(a, above(a, MINUS_ONE) && below(a, P32)); return __fixunsdfsi(a); }
EXPORT("i64.trunc_f64_s") int64_t i64_trunc_f64_s(double a) { check(a, at_least(a, SIGN64 | P63) && below(a, P63)); return __fixdfdi(a); }
EXPORT("i64.trunc_f64_u") uint64_t i64_trunc_f64_u(double a) { check(a, above(a, MINUS_ONE) && below(a, P64)); return __fixunsdfdi(a); }
EXPORT("i32.trunc_f32_s") int32_t i32_trunc_f32_s(float a) { return i32_trunc_f64_s(__extendsfdf2(a)); }
EXPORT("i32.trunc_f32_u") uint32_t i32_trunc_f32_u(float a) { return i32_trunc_f64_u(__extendsfdf2(a)); }
EXPORT("i64.trunc_f32_s") int64_t i64_trunc_f32_s(float a) { return i64_trunc_f64_s(__extendsfdf2(a)); }
EXPORT("i64.trunc_f32_u") uint64_t i64_trunc_f32_u(float a) { return i64_trunc_f64_u(__extendsfdf2(a)); }

/* saturating: NaN -> 0, below the range -> its minimum, above -> its maximum */
EXPORT("i32.trunc_sat_f64_s") int32_t i32_trunc_sat_f64_s(double a) {
    if (isnan64(B(a))) return 0;
    if (!above(a, BELOW_S32)) return INT32_MIN;
    if (!below(a, P31)) return INT32_MAX;
    return __fixdfsi(a);
}
EXPORT("i32.trunc_sat_f64_u") uint32_t i32_trunc_sat_f64_u(double a) {
    if (isnan64(B(a)) || !above(a, MINUS_ONE)) return 0;
    if (!below(a, P32)) return UINT32_MAX;
    return __fixunsdfsi(a);
}
EXPORT("i64.trunc_sat_f64_s") int64_t i64_trunc_sat_f64_s(double a) {
    if (isnan64(B(a))) return 0;
    if (!at_least(a, SIGN64 | P63)) return INT64_MIN;
    if (!below(a, P63)) return INT64_MAX;
    return __fixdfdi(a);
}
EXPORT("i64.trunc_sat_f64_u") uint64_t i64_trunc_sat_f64_u(double a) {
    if (isnan64(B(a)) || !above(a, MINUS_ONE)) return 0;
    if (!below(a, P64)) return UINT64_MAX;
    return __fixunsdfdi(a);
}
EXPORT("i32.trunc_sat_f32_s") int32_t i32_trunc_sat_f32_s(float a) { return i32_trunc_sat_f64_s(__extendsfdf2(a)); }
EXPORT("i32.trunc_sat_f32_u") uint32_t i32_trunc_sat_f32_u(float a) { return i32_trunc_sat_f64_u(__extendsfdf2(a)); }
EXPORT("i64.trunc_sat_f32_s") int64_t i64_trunc_sat_f32_s(float a) { return i64_trunc_sat_f64_s(__extendsfdf2(a)); }
EXPORT("i64.trunc_sat_f32_u") uint64_t i64_trunc_sat_f32_u(float a) { return i64_trunc_sat_f64_u(__extendsfdf2(a)); }
