/* function_pointers: calls through the table (call_indirect). An array of
 * operations, a struct carrying a callback, a generic insertion sort taking a
 * comparator (qsort's shape), and a function that returns a function pointer. */
#include <stdio.h>
#include <stdlib.h>

typedef int (*binary_op)(int, int);
typedef int (*compare)(const void *, const void *);

static int add(int a, int b) { return a + b; }
static int subtract(int a, int b) { return a - b; }
static int multiply(int a, int b) { return a * b; }
static int maximum(int a, int b) { return a > b ? a : b; }
static int first(int a, int b) { return b ? a : -a; }

static const binary_op OPERATIONS[] = {add, subtract, multiply, maximum, first};
static const char *const OPERATION_NAMES[] = {"add", "subtract", "multiply", "maximum", "first"};
#define OPERATION_COUNT ((int)(sizeof OPERATIONS / sizeof OPERATIONS[0]))

/* A fold over an array with any operation. */
static int fold(binary_op op, const int *values, int count, int start) {
    int total = start;
    for (int i = 0; i < count; i++)
        total = op(total, values[i]);
    return total;
}

/* A struct with a callback and its context. */
struct counter {
    const char *name;
    int count;
    void (*on_event)(struct counter *self, int value);
};

static void count_even(struct counter *self, int value) {
    if (value % 2 == 0)
        self->count++;
}

static void count_big(struct counter *self, int value) {
    if (value > 10)
        self->count += value;
}

/* The comparator-taking sort (element size fixed to int for brevity). */
static void sort(void *base, int count, int size, compare less_or_equal) {
    char *bytes = base;
    char temporary[16];
    for (int i = 1; i < count; i++) {
        for (int k = 0; k < size; k++)
            temporary[k] = bytes[i * size + k];
        int j = i;
        while (j > 0 && less_or_equal(temporary, bytes + (j - 1) * size) < 0) {
            for (int k = 0; k < size; k++)
                bytes[j * size + k] = bytes[(j - 1) * size + k];
            j--;
        }
        for (int k = 0; k < size; k++)
            bytes[j * size + k] = temporary[k];
    }
}

static int ascending(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static int descending(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }
static int by_magnitude(const void *a, const void *b) { return abs(*(const int *)a) - abs(*(const int *)b); }

struct point {
    int x, y;
};

static int by_distance(const void *a, const void *b) {
    const struct point *p = a, *q = b;
    return (p->x * p->x + p->y * p->y) - (q->x * q->x + q->y * q->y);
}

/* Returns a function pointer: a comparator chosen at run time. */
static compare choose(int which) {
    switch (which) {
    case 0:
        return ascending;
    case 1:
        return descending;
    default:
        return by_magnitude;
    }
}

static void print_ints(const char *label, const int *values, int count) {
    printf("%-12s", label);
    for (int i = 0; i < count; i++)
        printf(" %d", values[i]);
    putchar('\n');
}

int main(void) {
    static const int VALUES[] = {3, -8, 12, 5, -1, 20, 7};
    int count = (int)(sizeof VALUES / sizeof VALUES[0]);
    for (int i = 0; i < OPERATION_COUNT; i++)
        printf("%-8s fold=%d apply(6,4)=%d\n", OPERATION_NAMES[i], fold(OPERATIONS[i], VALUES, count, 1),
               OPERATIONS[i](6, 4));

    static struct counter counters[] = {{"even", 0, count_even}, {"big", 0, count_big}};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < count; i++)
            counters[c].on_event(&counters[c], VALUES[i]);
        printf("%s: %d\n", counters[c].name, counters[c].count);
    }

    static const char *const ORDERS[] = {"ascending", "descending", "magnitude"};
    for (int which = 0; which < 3; which++) {
        int copy[7];
        for (int i = 0; i < count; i++)
            copy[i] = VALUES[i];
        sort(copy, count, sizeof copy[0], choose(which));
        print_ints(ORDERS[which], copy, count);
    }

    static struct point points[] = {{3, 4}, {-1, 0}, {0, -6}, {2, 2}, {5, 0}};
    sort(points, 5, sizeof points[0], by_distance);
    for (int i = 0; i < 5; i++)
        printf("(%d,%d)%s", points[i].x, points[i].y, i < 4 ? " " : "\n");
    return 0;
}
