/* deep_recursion: a small recursive function nested 10,000 frames deep.
 *
 * Each call keeps its own locals until its callee returns, so every frame is
 * live at the deepest point: 10,000 frames of a one-word function (mix), then
 * 2,000 of a two-word one (weave: two parameters, the local on the operand
 * stack). The machine reserves only the words a function uses per frame
 * (docs/machine.md, "Frames"), however large printf's frame is elsewhere in
 * the program.
 */
#include <stdio.h>

#define DEPTH 10000
#define WEAVE_DEPTH 2000

int mix(int n) {
    if (n == 0) return 1;
    int below = mix(n - 1);
    return (below * 31 + n) % 1000003;
}

int weave(int n, int step) {
    if (n == 0) return step;
    int twisted = (n * step) % 7919;
    int below = weave(n - 1, twisted + 1);
    return (below ^ twisted) + n % 3;
}

int main(void) {
    printf("mix(%d) = %d\n", DEPTH, mix(DEPTH));
    printf("weave(%d) = %d\n", WEAVE_DEPTH, weave(WEAVE_DEPTH, 5));
    return 0;
}
