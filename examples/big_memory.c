/* big_memory: most of the machine's megabyte of linear memory in use.
 *
 * An open-addressing hash table of 65,536 slots (512 KiB in two static arrays,
 * zero until written) takes 600 pseudo-random keys, then is probed for
 * them and for 600 keys that are absent; a 64 KiB block from malloc, filled with memset, grows
 * the memory past its initial pages (memory.grow) and is checked and written
 * at both ends. Each slot, block and probe can land in any of the memory's
 * 16 KiB banks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 65536u /* a power of two: the probe wraps with a mask */
#define KEYS 600u
#define BLOCK_BYTES (64u * 1024u)
#define FILL_BYTE 0x5a

static unsigned keys[SLOTS];   /* 0: empty */
static unsigned counts[SLOTS]; /* how often each key was inserted */

static unsigned next_random(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return (*state >> 1) | 1u; /* never 0: 0 marks an empty slot */
}

static unsigned slot_of(unsigned key) {
    return (key ^ (key >> 15)) * 2654435761u & (SLOTS - 1);
}

static unsigned find(unsigned key, unsigned *probes) {
    unsigned slot = slot_of(key);
    while (keys[slot] && keys[slot] != key) {
        slot = (slot + 1) & (SLOTS - 1);
        ++*probes;
    }
    return slot;
}

int main(void) {
    unsigned state = 2026, probes = 0, found = 0, checksum = 0;
    for (unsigned i = 0; i < KEYS; ++i) {
        unsigned key = next_random(&state) % 150000u + 1u;
        unsigned slot = find(key, &probes);
        keys[slot] = key;
        counts[slot] += 1;
    }
    state = 2026;
    for (unsigned i = 0; i < KEYS; ++i) {
        unsigned key = next_random(&state) % 150000u + 1u;
        unsigned slot = find(key, &probes);
        found += keys[slot] == key;
        checksum = checksum * 31u + counts[slot] + slot;
    }
    unsigned absent = 0;
    for (unsigned i = 0; i < KEYS; ++i) {
        unsigned slot = find(150001u + i * 7u, &probes);
        absent += keys[slot] == 0;
    }
    printf("found %u of %u, absent %u of %u, %u extra probes, checksum %u\n", found, KEYS, absent, KEYS,
           probes, checksum);

    unsigned char *block = malloc(BLOCK_BYTES);
    if (!block) {
        printf("malloc failed\n");
        return 1;
    }
    memset(block, FILL_BYTE, BLOCK_BYTES);
    unsigned filled = block[0] == FILL_BYTE && block[BLOCK_BYTES - 1] == FILL_BYTE;
    block[0] = 17;
    block[BLOCK_BYTES - 1] = 25;
    printf("block of %u bytes at %u: filled %u, ends %u %u, memory %u pages\n", BLOCK_BYTES, (unsigned)block, filled,
           block[0], block[BLOCK_BYTES - 1], (unsigned)__builtin_wasm_memory_size(0));
    return 0;
}
