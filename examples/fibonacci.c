/* fibonacci: the first Fibonacci numbers computed in a loop, and a few again
 * with the naive recursion (which makes many calls: a workout for the call stack). */
#include <stdio.h>

#define ITERATIVE_COUNT 25
#define RECURSIVE_MAX 12

static int fib_recursive(int n) {
    return n < 2 ? n : fib_recursive(n - 1) + fib_recursive(n - 2);
}

int main(void) {
    int fib[ITERATIVE_COUNT];
    fib[0] = 0;
    fib[1] = 1;
    for (int i = 2; i < ITERATIVE_COUNT; i++)
        fib[i] = fib[i - 1] + fib[i - 2];

    printf("first %d Fibonacci numbers:\n", ITERATIVE_COUNT);
    for (int i = 0; i < ITERATIVE_COUNT; i++)
        printf("%d%c", fib[i], i + 1 < ITERATIVE_COUNT ? ' ' : '\n');

    for (int n = 0; n <= RECURSIVE_MAX; n += 4) {
        int value = fib_recursive(n);
        printf("fib_recursive(%d) = %d %s\n", n, value, value == fib[n] ? "ok" : "MISMATCH");
    }
    return 0;
}
