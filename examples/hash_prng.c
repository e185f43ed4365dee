/* hash_prng: 32-bit hashing and pseudo-random numbers, built from
 * multiplications, shifts, rotations and xors.
 *
 *  - FNV-1a and MurmurHash3 (x86, 32-bit) of the whole input;
 *  - the FNV-1a hash of every input line;
 *  - the first numbers of a xorshift32 generator seeded with the FNV-1a hash,
 *    and of the Numerical Recipes LCG seeded with the Murmur hash;
 *  - a histogram of 200 dice rolls from the xorshift generator. */
#include <stdint.h>
#include <stdio.h>

#define MAX_INPUT 256
#define FNV_OFFSET_BASIS 0x811C9DC5u
#define FNV_PRIME 0x01000193u
#define MURMUR_SEED 0x9747B28Cu
#define PRNG_OUTPUTS 6
#define DICE_ROLLS 200
#define DICE_SIDES 6

static uint32_t fnv1a(const unsigned char *bytes, int length) {
    uint32_t hash = FNV_OFFSET_BASIS;
    for (int i = 0; i < length; i++) {
        hash ^= bytes[i];
        hash *= FNV_PRIME;
    }
    return hash;
}

static uint32_t rotate_left(uint32_t value, int bits) {
    return (value << bits) | (value >> (32 - bits));
}

/* The 4-byte block at `bytes`, little-endian. */
static uint32_t load_le32(const unsigned char *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

static uint32_t murmur_mix_block(uint32_t block) {
    block *= 0xCC9E2D51u;
    block = rotate_left(block, 15);
    return block * 0x1B873593u;
}

/* The final avalanche: every input bit affects every output bit. */
static uint32_t murmur_finalize(uint32_t hash) {
    hash ^= hash >> 16;
    hash *= 0x85EBCA6Bu;
    hash ^= hash >> 13;
    hash *= 0xC2B2AE35u;
    hash ^= hash >> 16;
    return hash;
}

static uint32_t murmur3_32(const unsigned char *bytes, int length, uint32_t seed) {
    uint32_t hash = seed;
    int block_count = length / 4;
    for (int i = 0; i < block_count; i++) {
        hash ^= murmur_mix_block(load_le32(bytes + 4 * i));
        hash = rotate_left(hash, 13) * 5 + 0xE6546B64u;
    }
    const unsigned char *tail = bytes + 4 * block_count;
    uint32_t last = 0;
    for (int i = (length & 3) - 1; i >= 0; i--)
        last = last << 8 | tail[i];
    if (length & 3)
        hash ^= murmur_mix_block(last);
    return murmur_finalize(hash ^ (uint32_t)length);
}

static uint32_t xorshift32(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static uint32_t lcg_next(uint32_t *state) {
    return *state = *state * 1664525u + 1013904223u;
}

static int read_input(unsigned char *buffer) {
    int length = 0;
    for (int c = getchar(); c != EOF && length < MAX_INPUT; c = getchar())
        buffer[length++] = (unsigned char)c;
    return length;
}

static void print_line_hashes(const unsigned char *text, int length) {
    int line = 0;
    for (int start = 0; start < length; line++) {
        int end = start;
        while (end < length && text[end] != '\n')
            end++;
        printf("line %d: fnv1a %08x (%d bytes)\n", line, fnv1a(text + start, end - start), end - start);
        start = end + 1;
    }
}

static void print_dice_histogram(uint32_t seed) {
    int counts[DICE_SIDES];
    for (int side = 0; side < DICE_SIDES; side++)
        counts[side] = 0;
    uint32_t state = seed;
    for (int roll = 0; roll < DICE_ROLLS; roll++)
        counts[xorshift32(&state) % DICE_SIDES]++;
    for (int side = 0; side < DICE_SIDES; side++)
        printf("die %d: %3d\n", side + 1, counts[side]);
}

int main(void) {
    static unsigned char text[MAX_INPUT];
    int length = read_input(text);
    uint32_t fnv = fnv1a(text, length);
    uint32_t murmur = murmur3_32(text, length, MURMUR_SEED);
    printf("input: %d bytes\n", length);
    printf("fnv1a:   %08x\n", fnv);
    printf("murmur3: %08x\n", murmur);
    print_line_hashes(text, length);

    uint32_t xorshift_state = fnv ? fnv : 1; /* xorshift must not start at 0 */
    uint32_t lcg_state = murmur;
    for (int i = 0; i < PRNG_OUTPUTS; i++) {
        uint32_t x = xorshift32(&xorshift_state);
        uint32_t y = lcg_next(&lcg_state);
        printf("xorshift32 %08x  lcg %08x  %u\n", x, y, y >> 16);
    }
    print_dice_histogram(fnv ? fnv : 1);
    return 0;
}
