/* libc_tour: the standard C library (wasi-libc) as the machine runs it: stdio
 * (printf conversions, scanf, fgets, stderr), stdlib (malloc, calloc, realloc,
 * free, qsort, bsearch, strtol, atoi, abs, div, rand/srand, atexit, exit),
 * string.h, ctype.h, limits.h, stdint.h, inttypes.h, errno and argv. Checked
 * against wasmtime (tests/machine/test_libc.py). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ascending(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void goodbye(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv) {
    atexit(goodbye);
    printf("[%d|%i|%u|%x|%X|%o|%c|%s|%%|%p]\n", -42, 7, 4000000000u, 0xbeef, 0xbeef, 8, 'Z', "str", (void *)0x10);
    printf("[%5d|%-5d|%05d|%+d|%08x|%#x|%3s|%-3s|%*d|%.2s|%ld|%lld|%llx]\n", 42, 42, -42, 5, 0xabc, 255, "a", "b", 4,
           9, "xyz", LONG_MIN, LLONG_MIN, 0x123456789abcdefULL);
    printf("%" PRId64 " %" PRIu32 " %hhd %hd %zu\n", INT64_MAX, UINT32_MAX, (signed char)200, (short)70000,
           sizeof(long long));
    for (int i = 0; i < argc; i++)
        printf("argv[%d] = \"%s\"\n", i, argv[i]);

    int first = 0, second = 0;
    char word[32] = "";
    int matched = scanf("%d %d %31s", &first, &second, word);
    printf("scanf matched %d: %d %d %s\n", matched, first, second, word);
    char line[64];
    while (fgets(line, sizeof line, stdin))
        printf("line: %s", line);
    printf("eof %d\n", feof(stdin));

    char text[32];
    strcpy(text, "abcdefgh");
    memmove(text + 2, text, 5);
    printf("%s %zu %d %d %d %s %s\n", text, strlen(text), strcmp("abc", "abd") < 0, strncmp("abx", "aby", 2),
           memcmp("xyz", "xyz", 3), strchr(text, 'd'), strstr("haystack", "st"));
    snprintf(text, sizeof text, "%s-%d", "snprintf", 12345);
    strcat(text, "!");
    printf("%s %c%c %d %d\n", text, toupper('q'), tolower('Q'), isdigit('7') != 0, isspace('x') != 0);

    int values[] = {31, -4, 15, 9, 26, 5, -35, 8};
    int count = sizeof values / sizeof values[0];
    qsort(values, count, sizeof values[0], ascending);
    int key = 15;
    int *found = bsearch(&key, values, count, sizeof values[0], ascending);
    printf("sorted:");
    for (int i = 0; i < count; i++)
        printf(" %d", values[i]);
    printf(", 15 at %d\n", found ? (int)(found - values) : -1);

    char *end;
    long parsed = strtol("  -0x1f rest", &end, 16);
    div_t quotient = div(-17, 5);
    printf("strtol %ld [%s] atoi %d abs %d div %d %d\n", parsed, end, atoi("123abc"), abs(-9), quotient.quot,
           quotient.rem);
    errno = 0;
    strtol("99999999999999999999", NULL, 10);
    printf("overflow errno is ERANGE: %d\n", errno == ERANGE);

    srand(7);
    int a = rand(), b = rand();
    srand(7);
    printf("rand repeats after srand: %d, in range: %d\n", a == rand() && b == rand(), a >= 0 && a <= RAND_MAX);

    int *numbers = calloc(4, sizeof(int));
    numbers = realloc(numbers, 1000 * sizeof(int));
    numbers[999] = 7;
    printf("calloc zeroed %d, realloc kept %d\n", numbers[3] == 0, numbers[999]);
    free(numbers);

    FILE *file = fopen("/etc/passwd", "r");
    printf("fopen fails: %d, errno set: %d\n", file == NULL, errno != 0);
    fprintf(stderr, "a line on stderr (%d)\n", argc);
    exit(argc > 2 ? 7 : 0);
}
