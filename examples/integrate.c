/* Numerical integration in double precision: the trapezoid rule and Simpson's
 * rule for the integral of 4 / (1 + x^2) over [0, 1], which is pi, with 2, 4
 * and 8 intervals, and the error of each against pi. Every f64 add, multiply,
 * divide and conversion is a call of the front end's soft-float helpers
 * (zig's compiler_rt), and printf's %f and %e are musl's own. */
#include <stdio.h>

#define PI 3.14159265358979323846

static double f(double x) { return 4.0 / (1.0 + x * x); }

static double trapezoid(int n) {
    double h = 1.0 / n, sum = (f(0.0) + f(1.0)) / 2;
    for (int i = 1; i < n; i++) sum += f(i * h);
    return sum * h;
}

static double simpson(int n) {
    double h = 1.0 / n, sum = f(0.0) + f(1.0);
    for (int i = 1; i < n; i++) sum += (i % 2 ? 4 : 2) * f(i * h);
    return sum * h / 3;
}

int main(void) {
    for (int n = 2; n <= 8; n *= 2) {
        double t = trapezoid(n), s = simpson(n);
        printf("n=%d trapezoid %.9f (error %+.2e) simpson %.9f (error %+.2e)\n", n, t, t - PI, s, s - PI);
    }
    return 0;
}
