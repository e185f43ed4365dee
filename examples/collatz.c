/* collatz: the 3n+1 problem. Prints the trajectory of 7, the step counts of a
 * few famous starting values, and the longest chain that starts below a limit. */
#include <stdio.h>

/* Chains starting below this are searched for the longest one. */
#define SEARCH_LIMIT 100

static int next_collatz(int n) {
    return (n % 2 == 0) ? n / 2 : 3 * n + 1;
}

/* Steps from n down to 1. */
static int collatz_steps(int n) {
    int steps = 0;
    while (n != 1) {
        n = next_collatz(n);
        steps++;
    }
    return steps;
}

static void print_trajectory(int n) {
    printf("%d", n);
    while (n != 1) {
        n = next_collatz(n);
        printf(" %d", n);
    }
    putchar('\n');
}

int main(void) {
    print_trajectory(7);
    static const int starts[] = {6, 7, 9, 27, 97};
    for (int i = 0; i < (int)(sizeof starts / sizeof starts[0]); i++)
        printf("steps(%d) = %d\n", starts[i], collatz_steps(starts[i]));

    int best_start = 1, best_steps = 0;
    for (int start = 1; start < SEARCH_LIMIT; start++) {
        int steps = collatz_steps(start);
        if (steps > best_steps) {
            best_steps = steps;
            best_start = start;
        }
    }
    printf("longest chain below %d starts at %d: %d steps\n", SEARCH_LIMIT, best_start, best_steps);
    return 0;
}
