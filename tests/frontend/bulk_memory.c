/* memset, memcpy and memmove on arrays and structs: compiled for clang's default
 * wasm CPU (bulk memory on), struct copies become memory.copy.
 * tests/frontend/test_bulk_memory_oracle.py and tests/machine/test_model_traces.py run it. */
#include <stdio.h>
#include <string.h>

struct record { int id; char name[40]; int scores[12]; };

static struct record table[6];

static void show(const char *text, int count) {
    for (int i = 0; i < count; i++) putchar(text[i] ? text[i] : '.');
    putchar('\n');
}

int main(void) {
    char buffer[96];
    int length = getchar() - '0' + 20;   /* a size the compiler cannot know */
    memset(buffer, '-', sizeof buffer);
    memset(buffer + 3, 'x', length);
    show(buffer, 64);
    memcpy(buffer + 40, buffer, length);
    show(buffer, 96);
    memmove(buffer + 1, buffer, 50);     /* overlapping, forwards in memory: copied backwards */
    show(buffer, 64);
    memmove(buffer, buffer + 7, 50);     /* overlapping the other way */
    show(buffer, 64);
    struct record r;
    memset(&r, 0, sizeof r);
    r.id = 7;
    for (int i = 0; i < 12; i++) r.scores[i] = i * length;
    memcpy(r.name, "memory.copy", 12);
    for (int i = 0; i < 6; i++) { table[i] = r; table[i].id += i; }
    int sum = 0;
    for (int i = 0; i < 6; i++) sum += table[i].id + table[i].scores[11] + table[i].name[3];
    printf("%d", sum);
    putchar('\n');
    show(table[5].name, 12);
    return 0;
}
