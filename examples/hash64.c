/* hash64: 64-bit integer arithmetic in the transformer.
 *
 * FNV-1a 64 and a splitmix64 stream over each line of the input, 20! by
 * repeated multiplication, and the unsigned and signed 64-bit extremes, all
 * printed in decimal and hex by a printer that divides by 10 and 16.
 */
#include <stdio.h>

typedef unsigned long long u64;
typedef long long i64;

static void print_u64(u64 value) {
    char digits[21];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (count) putchar(digits[--count]);
}

static void print_i64(i64 value) {
    if (value < 0) {
        putchar('-');
        print_u64(0 - (u64)value);  /* also right for INT64_MIN */
    } else {
        print_u64((u64)value);
    }
}

static void print_hex64(u64 value) {
    printf("0x");
    for (int shift = 60; shift >= 0; shift -= 4) putchar("0123456789abcdef"[(value >> shift) & 15]);
}

static u64 fnv1a(const char *text, int length) {
    u64 hash = 14695981039346656037ULL;
    for (int i = 0; i < length; i++) {
        hash ^= (unsigned char)text[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

static u64 splitmix64(u64 *state) {
    u64 z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(void) {
    char line[64];
    int length = 0, c;
    while ((c = getchar()) != -1) {
        if (c != '\n' && length < 63) {
            line[length++] = (char)c;
            continue;
        }
        u64 hash = fnv1a(line, length);
        line[length] = 0;
        printf("%s: fnv1a ", line);
        print_hex64(hash);
        u64 state = hash;
        printf(" splitmix ");
        print_u64(splitmix64(&state) % 1000000);
        printf(" ");
        print_u64(splitmix64(&state) % 1000000);
        printf("\n");
        length = 0;
    }
    u64 factorial = 1;
    for (int n = 1; n <= 20; n++) factorial *= (u64)n;
    printf("20! = ");
    print_u64(factorial);
    printf("\n2^64 - 1 = ");
    print_u64(~0ULL);
    printf("\nINT64_MIN = ");
    print_i64((i64)(1ULL << 63));
    printf("\n-20! / 23 = ");
    print_i64(-(i64)factorial / 23);
    printf(" rem ");
    print_i64(-(i64)factorial % 23);
    printf("\n");
    return 0;
}
