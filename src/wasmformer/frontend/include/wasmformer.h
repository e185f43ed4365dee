/*
 * wasmformer.h - the small C runtime for programs run by wasmformer.
 *
 * Programs are compiled without a libc to a wasm32 module whose only contact
 * with the outside world is two functions imported from module "wasmformer":
 *
 *     putchar : (i32) -> ()    writes the low byte of its argument to the output
 *     getchar : () -> i32      the next input byte 0..255, or -1 at end of input
 *
 * Everything else here (formatted printing, reading numbers, a bump allocator,
 * string and memory functions) is written in plain C on top of those two.
 *
 * Rules the code below keeps, and that programs should keep too:
 *   - 32-bit integers only: no long long, float or double (the machine has no
 *     i64 or floating-point instructions). `long` is 32 bits on wasm32.
 *   - memory is at most WASMFORMER_MEMORY_LIMIT bytes (1,152 KiB). The stack sits
 *     at the bottom, static data after it, and the heap (malloc) after the
 *     data, growing the memory with memory.grow as it needs, up to the limit.
 *   - the program is one C file; this header defines functions with external
 *     linkage (memset, memcpy, ...) because the compiler may emit calls to them.
 */
#ifndef WASMFORMER_H
#define WASMFORMER_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of linear memory the machine can address (MAX_MEMORY in
 * wasmformer.machine.tokens). The heap never grows past it. */
#define WASMFORMER_MEMORY_LIMIT 1179648u
/* A WebAssembly page: memory.size and memory.grow count these. */
#define WASMFORMER_PAGE 65536u

#define EOF (-1)

/* clang for wasm32 renames `int main(void)` to `__main_void` and wraps it in a
 * `main(argc, argv)` meant for a libc start-up. Export the program's main under
 * the plain name "main" with type () -> i32 instead. wasmformer's compile_c
 * passes the same definition on the command line. */
#ifndef main
#define main __attribute__((export_name("main"))) wasmformer_main
#endif

/* ---------------------------------------------------------------- host I/O */

__attribute__((import_module("wasmformer"), import_name("putchar")))
void wasmformer_host_putchar(int byte);

__attribute__((import_module("wasmformer"), import_name("getchar")))
int wasmformer_host_getchar(void);

static inline int putchar(int c) {
    wasmformer_host_putchar(c);
    return (unsigned char)c;
}

/* The next input byte 0..255, or EOF (-1) at the end of the input. */
static inline int getchar(void) {
    return wasmformer_host_getchar();
}

/* --------------------------------------------------------- character tests */

static inline bool isdigit(int c) { return c >= '0' && c <= '9'; }
static inline bool isspace(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static inline bool isalpha(int c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }

static inline int abs(int value) { return value < 0 ? -value : value; }

/* ---------------------------------------------------------------- printing */

/* Writes the string without adding a newline. */
static void print_str(const char *text) {
    while (*text)
        putchar(*text++);
}

/* Writes the string and a newline, like the libc puts. */
static int puts(const char *text) {
    print_str(text);
    putchar('\n');
    return 0;
}

/* Largest number of characters one formatted number takes: 32 bits in octal
 * would be 11, in decimal 10 plus a sign; binary is not offered. */
#define WASMFORMER_NUMBER_CHARS 12

/* Writes the digits of value in base (10 or 16) into buffer, least significant
 * first; returns how many were written. The transformer divides natively (one
 * step of 9 tokens), so a digit is a remainder and a quotient by the base. */
static int wasmformer_digits(unsigned value, unsigned base, bool upper, char *buffer) {
    const char *digit_chars = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int count = 0;
    do {
        buffer[count++] = digit_chars[value % base];
        value /= base;
    } while (value != 0);
    return count;
}

/* Prints a number given as sign + magnitude, padded to width with spaces
 * (or zeros after the sign when zero_pad), left-aligned when left_align. */
static void wasmformer_print_number(unsigned magnitude, bool negative, unsigned base, bool upper,
                                    int width, bool zero_pad, bool left_align) {
    char digits[WASMFORMER_NUMBER_CHARS];
    int digit_count = wasmformer_digits(magnitude, base, upper, digits);
    int padding = width - digit_count - (negative ? 1 : 0);
    if (!left_align && !zero_pad)
        for (; padding > 0; padding--)
            putchar(' ');
    if (negative)
        putchar('-');
    if (!left_align && zero_pad)
        for (; padding > 0; padding--)
            putchar('0');
    while (digit_count > 0)
        putchar(digits[--digit_count]);
    for (; padding > 0; padding--)
        putchar(' ');
}

static void print_int(int value) {
    /* 0u - value is the magnitude even for INT_MIN, whose negation overflows int */
    unsigned magnitude = value < 0 ? 0u - (unsigned)value : (unsigned)value;
    wasmformer_print_number(magnitude, value < 0, 10, false, 0, false, false);
}

static void print_uint(unsigned value) {
    wasmformer_print_number(value, false, 10, false, 0, false, false);
}

/* Lowercase hexadecimal, no prefix, no leading zeros. */
static void print_hex(unsigned value) {
    wasmformer_print_number(value, false, 16, false, 0, false, false);
}

/* Pads text to width with spaces (right-aligned unless left_align). */
static void wasmformer_print_padded(const char *text, int width, bool left_align) {
    int padding = width - (int)__builtin_strlen(text);
    if (!left_align)
        for (; padding > 0; padding--)
            putchar(' ');
    print_str(text);
    for (; padding > 0; padding--)
        putchar(' ');
}

/* A small printf: conversions %d %i %u %x %X %c %s %%, flags '-' and '0',
 * a decimal width or '*', and the length modifiers 'l'/'h' (ignored: int and
 * long are both 32 bits). Returns 0 (the count of bytes is not tracked). */
static int printf(const char *format, ...) {
    va_list args;
    va_start(args, format);
    for (const char *cursor = format; *cursor; cursor++) {
        if (*cursor != '%') {
            putchar(*cursor);
            continue;
        }
        cursor++;
        bool left_align = false, zero_pad = false;
        for (;; cursor++) {
            if (*cursor == '-')
                left_align = true;
            else if (*cursor == '0')
                zero_pad = true;
            else
                break;
        }
        int width = 0;
        if (*cursor == '*') {
            width = va_arg(args, int);
            cursor++;
        }
        while (isdigit(*cursor))
            width = width * 10 + (*cursor++ - '0');
        while (*cursor == 'l' || *cursor == 'h')
            cursor++;
        switch (*cursor) {
        case 'd':
        case 'i': {
            int value = va_arg(args, int);
            unsigned magnitude = value < 0 ? 0u - (unsigned)value : (unsigned)value;
            wasmformer_print_number(magnitude, value < 0, 10, false, width, zero_pad, left_align);
            break;
        }
        case 'u':
            wasmformer_print_number(va_arg(args, unsigned), false, 10, false, width, zero_pad, left_align);
            break;
        case 'x':
        case 'X':
            wasmformer_print_number(va_arg(args, unsigned), false, 16, *cursor == 'X', width, zero_pad,
                                    left_align);
            break;
        case 'c': {
            char text[2] = {(char)va_arg(args, int), 0};
            wasmformer_print_padded(text, width, left_align);
            break;
        }
        case 's':
            wasmformer_print_padded(va_arg(args, const char *), width, left_align);
            break;
        case '%':
            putchar('%');
            break;
        case 0: /* a lone '%' at the end of the format */
            cursor--;
            break;
        default: /* unknown conversion: print it as written */
            putchar('%');
            putchar(*cursor);
            break;
        }
    }
    va_end(args);
    return 0;
}

/* ----------------------------------------------------------------- reading */

/* Skips whitespace; returns the first other byte, or EOF. */
static int wasmformer_skip_space(void) {
    int c = getchar();
    while (isspace(c))
        c = getchar();
    return c;
}

/* Reads a decimal integer: skips whitespace, takes an optional sign and the
 * digits after it. Stores it in *value and returns true; returns false (and
 * leaves *value alone) at the end of input or when no digit follows. The byte
 * just after the number is consumed. */
static bool scan_int(int *value) {
    int c = wasmformer_skip_space();
    bool negative = c == '-';
    if (c == '-' || c == '+')
        c = getchar();
    if (!isdigit(c))
        return false;
    unsigned magnitude = 0;
    for (; isdigit(c); c = getchar())
        magnitude = magnitude * 10 + (unsigned)(c - '0');
    *value = negative ? (int)(0u - magnitude) : (int)magnitude;
    return true;
}

/* Like scan_int, returning the number, or 0 when there is none. */
static int read_int(void) {
    int value = 0;
    scan_int(&value);
    return value;
}

/* Reads the next whitespace-separated word into buffer (at most capacity - 1
 * bytes, then a terminating 0; longer words are cut and the rest skipped).
 * Returns its length, 0 at the end of input. */
static int read_word(char *buffer, int capacity) {
    int length = 0;
    int c = wasmformer_skip_space();
    for (; c != EOF && !isspace(c); c = getchar())
        if (length < capacity - 1)
            buffer[length++] = (char)c;
    buffer[length] = 0;
    return length;
}

/* ------------------------------------------------- memory and string functions
 * External linkage: clang turns some loops and struct copies into calls to
 * memset/memcpy/memmove/memcmp/bcmp, which must then link. no_builtin keeps the
 * compiler from turning these very loops back into calls to themselves. */

__attribute__((no_builtin)) void *memset(void *destination, int byte, size_t count) {
    unsigned char *out = destination;
    while (count--)
        *out++ = (unsigned char)byte;
    return destination;
}

__attribute__((no_builtin)) void *memcpy(void *restrict destination, const void *restrict source,
                                         size_t count) {
    unsigned char *out = destination;
    const unsigned char *in = source;
    while (count--)
        *out++ = *in++;
    return destination;
}

__attribute__((no_builtin)) void *memmove(void *destination, const void *source, size_t count) {
    unsigned char *out = destination;
    const unsigned char *in = source;
    if (out < in) {
        while (count--)
            *out++ = *in++;
    } else {
        while (count--)
            out[count] = in[count];
    }
    return destination;
}

__attribute__((no_builtin)) int memcmp(const void *left, const void *right, size_t count) {
    const unsigned char *a = left, *b = right;
    for (; count; count--, a++, b++)
        if (*a != *b)
            return *a - *b;
    return 0;
}

/* memcmp(...) == 0 may be rewritten into a call to bcmp. */
__attribute__((no_builtin)) int bcmp(const void *left, const void *right, size_t count) {
    return memcmp(left, right, count);
}

__attribute__((no_builtin)) size_t strlen(const char *text) {
    const char *end = text;
    while (*end)
        end++;
    return (size_t)(end - text);
}

__attribute__((no_builtin)) int strcmp(const char *left, const char *right) {
    while (*left && *left == *right) {
        left++;
        right++;
    }
    return (unsigned char)*left - (unsigned char)*right;
}

__attribute__((no_builtin)) char *strcpy(char *destination, const char *source) {
    char *out = destination;
    while ((*out++ = *source++))
        ;
    return destination;
}

/* ------------------------------------------------------------------ heap */

/* First byte after the static data, placed by the linker. */
extern unsigned char __heap_base;

/* Alignment of every block malloc returns (the largest C type here is 4 bytes;
 * 8 keeps the usual malloc promise for any struct). */
#define WASMFORMER_HEAP_ALIGN 8u

/* Address of the next free heap byte; 0 until the first malloc. */
static uintptr_t wasmformer_heap_next;

/* Bump allocator: hands out blocks upward from __heap_base, growing the memory
 * when a block ends past it, and returns NULL once a block would cross
 * WASMFORMER_MEMORY_LIMIT or memory.grow fails. free() releases nothing, so
 * every block is memory never handed out before: still zero. */
static void *malloc(size_t size) {
    uintptr_t start = wasmformer_heap_next ? wasmformer_heap_next : (uintptr_t)&__heap_base;
    start = (start + WASMFORMER_HEAP_ALIGN - 1) & ~(uintptr_t)(WASMFORMER_HEAP_ALIGN - 1);
    if (start > WASMFORMER_MEMORY_LIMIT || size > WASMFORMER_MEMORY_LIMIT - start)
        return NULL;
    uintptr_t end = start + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * WASMFORMER_PAGE;
    if (end > have) {
        uintptr_t pages = (end - have + WASMFORMER_PAGE - 1) / WASMFORMER_PAGE;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1)
            return NULL;
    }
    wasmformer_heap_next = end;
    return (void *)start;
}

static void free(void *block) {
    (void)block;
}

static void *calloc(size_t count, size_t size) {
    if (size && count > WASMFORMER_MEMORY_LIMIT / size)
        return NULL;
    return malloc(count * size); /* fresh memory: already zero (see malloc) */
}

#endif /* WASMFORMER_H */
